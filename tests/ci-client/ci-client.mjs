#!/usr/bin/env node
// A real CI client: the steps docker/setup-buildx-action and docker/build-push-action take,
// through their own library, @docker/actions-toolkit, against whatever `docker buildx` is
// (brix installed as the docker-buildx CLI plugin, or real buildx). The e2e test
// tests/tests/ci_client.rs runs it once with each and compares what it printed.
//
//   node ci-client.mjs --builder NAME --tag REF --context DIR --buildkitd-config FILE
//                      [--platforms linux/amd64,linux/arm64] [--builder-id URL]
//
// Steps, each recorded in `steps` with `ok`, its time and, when it failed, the error:
//   version          Buildx.isAvailable, Buildx.version, versionSatisfies (setup-buildx-action)
//   create           create --name --driver docker-container --driver-opt network=host --use
//                    --buildkitd-config FILE (the toolkit's BuildKit config copy of FILE)
//   bootstrap        inspect --bootstrap --builder NAME
//   inspect          Builder.inspect(NAME), BuildKit.getVersion per node (setup-buildx-action)
//   build            build --iidfile --attest type=provenance,... --platform --tag --builder
//                    --metadata-file --push, read back with resolveImageID/resolveMetadata/
//                    resolveDigest/resolveRef (build-push-action)
//   history-inspect  History.inspect: history inspect --format json --builder NAME REF
//   history-export   History.export: history export --builder NAME --output F REF --finalize
//                    (build-push-action's post step, the build record for the job summary)
//
// stdout carries exactly one JSON object, the result; everything the toolkit and the commands
// print (workflow commands, progress) goes to stderr. The exit status is 0 when every step
// succeeded and 1 otherwise; the JSON is printed either way.
//
// The toolkit is loaded from CI_CLIENT_NODE_MODULES when set (cargo xtask e2e installs it
// under target/e2e/ci-client/), else from a node_modules beside this script (`npm ci` here).

import fs from 'node:fs';
import path from 'node:path';
import {pathToFileURL} from 'node:url';
import {parseArgs} from 'node:util';

const printResult = process.stdout.write.bind(process.stdout);
process.stdout.write = process.stderr.write.bind(process.stderr);

const {values: opts} = parseArgs({
  options: {
    builder: {type: 'string'},
    tag: {type: 'string'},
    context: {type: 'string'},
    'buildkitd-config': {type: 'string'},
    platforms: {type: 'string', default: 'linux/amd64,linux/arm64'},
    'builder-id': {type: 'string', default: 'https://example.invalid/run/1'}
  }
});
for (const name of ['builder', 'tag', 'context', 'buildkitd-config']) {
  if (!opts[name]) {
    process.stderr.write(`ci-client: --${name} is required\n`);
    process.exit(2);
  }
}

// What a workflow run would have; History.export names its file after the repository.
process.env.GITHUB_REPOSITORY ??= 'brix/ci-client';

const modulesDir = process.env.CI_CLIENT_NODE_MODULES;
const toolkitDir = modulesDir ? path.join(modulesDir, '@docker', 'actions-toolkit') : undefined;
async function toolkitModule(file) {
  return import(toolkitDir ? pathToFileURL(path.join(toolkitDir, 'lib', file)).href : `@docker/actions-toolkit/lib/${file}`);
}
const {Toolkit} = await toolkitModule('toolkit.js');
const {Buildx} = await toolkitModule('buildx/buildx.js');
const {Build} = await toolkitModule('buildx/build.js');
const {History} = await toolkitModule('buildx/history.js');
const {Exec} = await toolkitModule('exec.js');

const result = {toolkit: toolkitVersion(), steps: {}};

function toolkitVersion() {
  const dir = toolkitDir ?? path.join(path.dirname(new URL(import.meta.url).pathname), 'node_modules', '@docker', 'actions-toolkit');
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
  } catch {
    return undefined;
  }
}

/** Runs one step; records whether it worked, its time and its error. */
async function step(name, needs, work) {
  const missing = needs.filter(n => !result.steps[n]?.ok);
  if (missing.length > 0) {
    result.steps[name] = {ok: false, skipped: `needs ${missing.join(', ')}`};
    return;
  }
  const started = Date.now();
  try {
    await work();
    result.steps[name] = {ok: true, ms: Date.now() - started};
  } catch (err) {
    result.steps[name] = {ok: false, ms: Date.now() - started, error: String(err?.message ?? err)};
  }
}

/** `docker buildx ARGS` as the actions run it (Exec.getExecOutput on Buildx.getCommand). */
async function buildx(args, env) {
  const cmd = await toolkit.buildx.getCommand(args);
  const res = await Exec.getExecOutput(cmd.command, cmd.args, {
    ignoreReturnCode: true,
    env: env ? {...process.env, ...env} : undefined
  });
  if (res.exitCode != 0) {
    throw new Error(`\`${[cmd.command, ...cmd.args].join(' ')}\` failed (exit ${res.exitCode}): ${Buildx.getErrorMessage(res.stderr)}`);
  }
  return res;
}

const toolkit = new Toolkit();
const builder = opts.builder;
let buildRef;

await step('version', [], async () => {
  const available = await toolkit.buildx.isAvailable();
  result.buildx = {standalone: await toolkit.buildx.isStandalone(), available};
  if (!available) {
    throw new Error('Buildx.isAvailable: false');
  }
  await toolkit.buildx.printVersion();
  result.buildx.version = await toolkit.buildx.version();
  result.buildx.satisfies = {};
  // The ranges the actions and the toolkit branch on: --driver-opt (0.3), --iidfile with
  // platforms (0.4.2), --metadata-file (0.6), --attest (0.10), --buildkitd-config (0.13),
  // history export (0.23), --finalize (0.24).
  for (const range of ['>=0.3.0', '>=0.4.2', '>=0.6.0', '>=0.10.0', '>=0.13.0', '>=0.23.0', '>=0.24.0']) {
    result.buildx.satisfies[range] = await toolkit.buildx.versionSatisfies(range);
  }
});

await step('create', ['version'], async () => {
  const args = ['create', '--name', builder, '--driver', 'docker-container'];
  if (await toolkit.buildx.versionSatisfies('>=0.3.0')) {
    args.push('--driver-opt', 'network=host');
  }
  args.push('--use');
  const config = toolkit.buildkit.config.resolveFromFile(opts['buildkitd-config']);
  args.push((await toolkit.buildx.versionSatisfies('>=0.13.0')) ? '--buildkitd-config' : '--config', config);
  await buildx(args);
});

await step('bootstrap', ['create'], async () => {
  await buildx(['inspect', '--bootstrap', '--builder', builder]);
});

await step('inspect', ['bootstrap'], async () => {
  const info = await toolkit.builder.inspect(builder);
  const platforms = [];
  for (const node of info.nodes) {
    for (const platform of node.platforms?.split(',') ?? []) {
      if (!platforms.includes(platform)) {
        platforms.push(platform);
      }
    }
  }
  const buildkit = [];
  for (const node of info.nodes) {
    buildkit.push(await toolkit.buildkit.getVersion(node));
  }
  result.builder = {
    info,
    exists: await toolkit.builder.exists(builder),
    platforms: platforms.join(','),
    buildkit,
    buildkitSatisfies: {'>=0.11.0': await toolkit.buildkit.versionSatisfies(builder, '>=0.11.0', info)},
    container: info.nodes[0]?.name ? `${Buildx.containerNamePrefix}${info.nodes[0].name}` : undefined
  };
});

await step('build', ['inspect'], async () => {
  const started = new Date();
  const attest = Build.resolveAttestationAttrs(`type=provenance,${Build.resolveProvenanceAttrs(`mode=max,builder-id=${opts['builder-id']}`)}`);
  const args = ['build'];
  if (await toolkit.buildx.versionSatisfies('>=0.4.2')) {
    args.push('--iidfile', toolkit.buildxBuild.getImageIDFilePath());
  }
  if (await toolkit.buildx.versionSatisfies('>=0.10.0')) {
    args.push('--attest', attest);
  }
  args.push('--platform', opts.platforms, '--tag', opts.tag, '--builder', builder);
  if (await toolkit.buildx.versionSatisfies('>=0.6.0')) {
    args.push('--metadata-file', toolkit.buildxBuild.getMetadataFilePath());
  }
  args.push('--push', opts.context);
  result.build = {args: args.slice(1)};
  await buildx(args, {BUILDX_METADATA_WARNINGS: 'true'});

  const metadata = toolkit.buildxBuild.resolveMetadata();
  buildRef = toolkit.buildxBuild.resolveRef(metadata);
  let refFrom = 'metadata';
  if (!buildRef) {
    // build-push-action's fallback: the first local state written since the build started.
    const refs = Buildx.refs({dir: Buildx.refsDir, builderName: builder, since: started});
    buildRef = Object.keys(refs)[0];
    refFrom = buildRef ? 'local state' : 'none';
  }
  let localState;
  try {
    localState = buildRef ? Buildx.localState(buildRef) : undefined;
  } catch (err) {
    localState = {error: String(err?.message ?? err)};
  }
  const provenance = toolkit.buildxBuild.resolveProvenance(metadata);
  Object.assign(result.build, {
    imageID: toolkit.buildxBuild.resolveImageID(),
    digest: toolkit.buildxBuild.resolveDigest(metadata),
    ref: buildRef,
    refFrom,
    metadataKeys: Object.keys(metadata ?? {}).sort(),
    metadata,
    provenance: provenance ? {keys: Object.keys(provenance).sort(), buildType: provenance.buildType, builderId: provenance.builder?.id} : undefined,
    warnings: toolkit.buildxBuild.resolveWarnings(metadata),
    localState
  });
  if (!result.build.digest) {
    throw new Error('resolveDigest found no containerimage.digest in the metadata file');
  }
  if (!buildRef) {
    throw new Error('no build ref: neither buildx.build.ref in the metadata nor a local state');
  }
});

const history = new History({buildx: toolkit.buildx});
result.history = {};

await step('history-inspect', ['build'], async () => {
  result.history.inspect = await history.inspect({ref: buildRef.split('/').pop(), builder});
});

await step('history-export', ['build'], async () => {
  const exported = await history.export({refs: [buildRef]});
  result.history.export = exported;
});

printResult(`${JSON.stringify(result)}\n`);
process.exitCode = Object.values(result.steps).every(s => s.ok) ? 0 : 1;
