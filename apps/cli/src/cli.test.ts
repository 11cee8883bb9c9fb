import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commandTree, completionScript } from './completion.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { configPath, loadConfig, resolveSettings, saveConfig, saveDevProfile } from './config.js';
import { serverEntryPoints } from './server-entry-points.js';
import { ExitCode, exitCodeForStatus } from './errors.js';
import { buildProgram } from './program.js';
import { fieldComments } from '@cairn/proto';
import { buildResidencyReport, renderMarkdown } from './residency.js';

describe('profiles', () => {
  it('are saved with mode 600 and resolved flag, then environment, then profile', () => {
    const env = { CAIRN_CONFIG_DIR: mkdtempSync(join(tmpdir(), 'cairn-cfg-')) };
    const file = saveConfig(
      { currentProfile: 'prod', profiles: { prod: { controlPlaneUrl: 'https://cp.example.com', apiKey: 'cak_1', project: 'prod' } } },
      env,
    );
    assert.equal(file, configPath(env));
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(loadConfig(env).profiles['prod'], { controlPlaneUrl: 'https://cp.example.com', apiKey: 'cak_1', project: 'prod' });
    const fromProfile = resolveSettings({}, env);
    assert.equal(fromProfile.profile, 'prod');
    assert.equal(fromProfile.project, 'prod');
    const fromEnv = resolveSettings({}, { ...env, CAIRN_PROJECT: 'staging', CAIRN_API_KEY: 'cak_env' });
    assert.deepEqual(
      [fromEnv.project, fromEnv.apiKey, fromEnv.sources.project, fromEnv.sources.apiKey],
      ['staging', 'cak_env', 'env', 'env'],
    );
    const fromFlag = resolveSettings({ project: 'dev' }, { ...env, CAIRN_PROJECT: 'staging' });
    assert.deepEqual([fromFlag.project, fromFlag.sources.project], ['dev', 'flag']);
    assert.equal(resolveSettings({ profile: 'other' }, env).controlPlaneUrl, undefined);
    assert.equal(configPath({ XDG_CONFIG_HOME: '/x/conf' }), '/x/conf/cairn/config.yaml');
  });
});

describe('the dev profile', () => {
  const dev = {
    controlPlaneUrl: 'http://127.0.0.1:7280',
    apiKey: 'cak_dev',
    project: 'default',
    gatewayUrl: 'http://127.0.0.1:7281',
    gatewayToken: 'cgt_dev',
  };

  it('becomes the current profile when there is none, or it is already', () => {
    const env = { CAIRN_CONFIG_DIR: mkdtempSync(join(tmpdir(), 'cairn-cfg-')) };
    const first = saveDevProfile(dev, env);
    assert.deepEqual([first.current, first.switched], ['dev', true]);
    assert.deepEqual(resolveSettings({}, env).gatewayToken, 'cgt_dev');
    assert.equal(statSync(first.file).mode & 0o777, 0o600);
    const again = saveDevProfile({ ...dev, apiKey: 'cak_new' }, env);
    assert.equal(again.switched, true);
    assert.equal(loadConfig(env).profiles['dev']?.apiKey, 'cak_new');
  });

  it('leaves another current profile current, and says how to use dev', () => {
    const env = { CAIRN_CONFIG_DIR: mkdtempSync(join(tmpdir(), 'cairn-cfg-')) };
    saveConfig({ currentProfile: 'prod', profiles: { prod: { controlPlaneUrl: 'https://cp.example.com', apiKey: 'cak_prod' } } }, env);
    const saved = saveDevProfile(dev, env);
    assert.deepEqual([saved.current, saved.switched], ['prod', false]);
    assert.match(saved.note, /your current profile stays "prod": use `cairn --profile dev …` or `cairn profiles use dev`/);
    assert.equal(resolveSettings({}, env).controlPlaneUrl, 'https://cp.example.com');
    assert.equal(resolveSettings({ profile: 'dev' }, env).controlPlaneUrl, 'http://127.0.0.1:7280');
    // A profile named "default" is the current one when none is marked.
    const env2 = { CAIRN_CONFIG_DIR: mkdtempSync(join(tmpdir(), 'cairn-cfg-')) };
    saveConfig({ profiles: { default: { controlPlaneUrl: 'https://cp.example.com' } } }, env2);
    assert.equal(saveDevProfile(dev, env2).current, 'default');
  });
});

describe('server entry points', () => {
  it('are the bundles in servers/ beside the packed CLI, and the repository builds otherwise', () => {
    const dist = mkdtempSync(join(tmpdir(), 'cairn-packed-'));
    assert.equal(serverEntryPoints(new URL(`file://${dist}/main.js`)), undefined);
    mkdirSync(join(dist, 'servers'));
    writeFileSync(join(dist, 'servers/control-plane.js'), '');
    assert.deepEqual(serverEntryPoints(new URL(`file://${dist}/main.js`)), {
      controlPlane: join(dist, 'servers/control-plane.js'),
      gateway: join(dist, 'servers/gateway.js'),
      mockLlm: join(dist, 'servers/mock-llm.js'),
    });
    mkdirSync(join(dist, 'console'));
    writeFileSync(join(dist, 'console/index.html'), '<!doctype html>');
    assert.equal(
      serverEntryPoints(new URL(`file://${dist}/main.js`))?.consoleDir,
      join(dist, 'console'),
      'the console ships beside the servers',
    );
    assert.equal(serverEntryPoints(), undefined, 'this checkout has no servers/ beside the CLI');
  });
});

describe('exit codes', () => {
  it('map HTTP statuses to stable codes', () => {
    assert.deepEqual([400, 401, 403, 404, 409, 429, 500, 502, 503].map(exitCodeForStatus), [
      ExitCode.USAGE,
      ExitCode.AUTH,
      ExitCode.AUTH,
      ExitCode.NOT_FOUND,
      ExitCode.CONFLICT,
      ExitCode.LIMITED,
      ExitCode.FAILURE,
      ExitCode.FAILURE,
      ExitCode.UNREACHABLE,
    ]);
  });
});

describe('completion', () => {
  it('covers every command of the tree in bash, zsh and fish', () => {
    const program = buildProgram();
    const paths = commandTree(program).map((n) => n.path.join(' '));
    for (const p of [
      'runs fork',
      'schedules backfill',
      'residency report',
      'replay',
      'doctor',
      'data-planes create',
      'workflows register',
    ]) {
      assert.ok(paths.includes(p), `${p} missing from ${paths.join(', ')}`);
    }
    const bash = completionScript(program, 'bash');
    assert.match(bash, /"runs fork"\) words="[^"]*--from-step/);
    assert.match(completionScript(program, 'zsh'), /^#compdef cairn/);
    assert.match(completionScript(program, 'fish'), /complete -c cairn -n '__fish_use_subcommand' -a replay/);
  });

  it('gives every command examples in its help', () => {
    const missing: string[] = [];
    const visit = (cmd: ReturnType<typeof buildProgram>, path: string[]): void => {
      let help = '';
      cmd.configureOutput({ writeOut: (s) => (help += s) });
      cmd.outputHelp();
      if (!help.includes('Examples:')) missing.push(path.join(' ') || 'cairn');
      for (const sub of cmd.commands) visit(sub, [...path, sub.name()]);
    };
    visit(buildProgram(), []);
    assert.deepEqual(missing, []);
  });
});

describe('residency report', () => {
  it('lists what the data plane sends, classified, and nothing the control plane sends back', () => {
    const report = buildResidencyReport();
    assert.deepEqual(report.problems, []);
    const names = report.messages.map((m) => m.message);
    assert.ok(names.includes('cairn.worker.v1.ConnectRequest'));
    assert.ok(names.includes('cairn.gateway.v1.SignalRunRequest'));
    assert.ok(!names.includes('cairn.worker.v1.ConnectResponse'));
    assert.ok(!names.includes('cairn.gateway.v1.StartRunResponse'));
    const fields = report.messages.flatMap((m) => m.fields);
    assert.equal(report.totals.fields, fields.length);
    assert.ok(fields.every((f) => ['ID', 'NAME', 'ENUM', 'NUMBER', 'TIME', 'DIGEST', 'STRUCTURE'].includes(f.class)));
    const signal = report.messages.find((m) => m.message === 'cairn.gateway.v1.SignalRunRequest');
    assert.deepEqual(
      signal?.fields.map((f) => [f.field, f.class]),
      [
        ['run_id', 'ID'],
        ['signal_name', 'NAME'],
        ['signal_id', 'ID'],
        ['signal_digest', 'DIGEST'],
      ],
    );
    assert.match(renderMarkdown(report), /\| 2 \| `signal_name` \| string \| NAME \| ≤ 100 chars/);
    // What each field carries is its comment in proto/, for every field of the contract.
    assert.equal(
      signal?.fields.find((f) => f.field === 'signal_id')?.carries.startsWith('The data-plane identifier of the stored signal body'),
      true,
    );
    const uncommented = report.messages.flatMap((m) =>
      m.fields.filter((f) => fieldComments[`${m.message}.${f.field}`] !== f.carries).map((f) => `${m.message}.${f.field}`),
    );
    assert.deepEqual(uncommented, [], 'every field that crosses has a comment in proto/ saying what it carries');
  });
});
