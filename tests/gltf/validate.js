// Validate glTF files with the Khronos glTF validator: node validate.js FILE... -> one JSON report per line.
const fs = require("fs");
const path = require("path");
const validator = require("gltf-validator");

async function main() {
  for (const file of process.argv.slice(2)) {
    const data = new Uint8Array(fs.readFileSync(file));
    const report = await validator.validateBytes(data, { maxIssues: 100, uri: path.basename(file) });
    console.log(JSON.stringify({ file, issues: report.issues }));
  }
}

main().catch((error) => { console.error(error); process.exit(2); });
