// Parse an AsyncAPI document with the official parser (@asyncapi/parser, pinned in package.json)
// and print, as JSON, the parser's version, the messages it found and every diagnostic it
// reported (errors, warnings, information and hints alike): tests/test_asyncapi.py asserts there
// are none. Usage: node tests/asyncapi/parse.mjs [document], docs/asyncapi.yaml by default.
// Exit status 0 whatever the diagnostics (the test reads them), 2 if the file cannot be read.
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Parser } from '@asyncapi/parser';

const here = dirname(fileURLToPath(import.meta.url));
const path = resolve(process.argv[2] ?? resolve(here, '..', '..', 'docs', 'asyncapi.yaml'));
// DiagnosticSeverity's names (@stoplight/types), in its order.
const SEVERITIES = ['error', 'warning', 'information', 'hint'];

async function installedVersion() {
  // The package's exports do not include its package.json: read the installed copy's.
  const manifest = resolve(here, 'node_modules', '@asyncapi', 'parser', 'package.json');
  return JSON.parse(await readFile(manifest, 'utf8')).version;
}

let text;
try {
  text = await readFile(path, 'utf8');
} catch (error) {
  console.error(`cannot read ${path}: ${error.message}`);
  process.exit(2);
}

const { document, diagnostics } = await new Parser().parse(text, { source: path });
console.log(
  JSON.stringify(
    {
      parser: await installedVersion(),
      asyncapi: document?.version() ?? null,
      messages: document ? document.allMessages().all().map((message) => message.id()) : [],
      diagnostics: diagnostics.map((diagnostic) => ({
        severity: SEVERITIES[diagnostic.severity] ?? diagnostic.severity,
        code: diagnostic.code,
        message: diagnostic.message,
        path: diagnostic.path.join('.'),
        line: diagnostic.range.start.line + 1,
      })),
    },
    null,
    2,
  ),
);
