// Prettier's settings for the addons' XML, JS and SCSS (the ones OCA
// repositories use); the pre-commit hook "prettier" runs it with the XML plugin.
/** @type {import('prettier').Config} */
const config = {
    // prettier 3 no longer finds plugins by itself: resolved from the hook's
    // node environment (NODE_PATH)
    plugins: [require.resolve("@prettier/plugin-xml")],
    bracketSpacing: false,
    printWidth: 88,
    proseWrap: "always",
    semi: true,
    // four spaces, as Odoo and OCA indent XML and JS
    tabWidth: 4,
    trailingComma: "es5",
    xmlWhitespaceSensitivity: "strict",
};

module.exports = config;
