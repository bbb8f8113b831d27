import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateCHeader } from './generate-c-header.js';
import { CHANNEL, CHANNEL_LAYOUT, CHAT_CALL_RESULT, CHAT_DELIVER_MSG, CHAT_LIST_REQ, CHAT_LIST_RESULT, CHAT_NAME_REQ, CHAT_PEER, CHAT_PRESENCE_MSG, CHAT_REPLY_REQ, CHAT_RX, CHAT_SEND_REQ, CHAT_SEND_RESULT, CHAT_WATCH_REQ, DIRENT, FILE_HANDLE_REQ, FILE_INFO, FILE_IO_REQ, FILE_IO_RESP, FILE_LIST_REQ, FILE_LIST_RESP, FILE_OPEN_REQ, FILE_PATH_REQ, HEADER, MSG_HEADER, MSG_TYPE, RING, SET_MODE_REQ, STATS_CONFIG_MSG, STATS_RECORD, STATS_SHARE_MSG, STATUS, WIRE_STRUCTS } from './wire-layout.js';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const headerPath = path.join(repoRoot, 'guest-driver/include/vmgmt_layout.h');

describe('wire layout', () => {
  it('pins every struct size', () => {
    expect(HEADER.sizeBytes).toBe(256);
    expect(CHANNEL.sizeBytes).toBe(64);
    expect(RING.sizeBytes).toBe(128);
    expect(MSG_HEADER.sizeBytes).toBe(16);
    expect([SET_MODE_REQ, FILE_PATH_REQ, FILE_OPEN_REQ, FILE_INFO, FILE_IO_REQ, FILE_IO_RESP, FILE_HANDLE_REQ, FILE_LIST_REQ, FILE_LIST_RESP, DIRENT].map((s) => s.sizeBytes)).toEqual([8, 16, 24, 32, 24, 8, 8, 24, 16, 24]);
    expect([CHAT_NAME_REQ, CHAT_SEND_REQ, CHAT_CALL_RESULT, CHAT_SEND_RESULT, CHAT_REPLY_REQ, CHAT_LIST_REQ, CHAT_LIST_RESULT, CHAT_PEER, CHAT_WATCH_REQ, CHAT_DELIVER_MSG, CHAT_PRESENCE_MSG, CHAT_RX].map((s) => s.sizeBytes)).toEqual([8, 32, 16, 8, 24, 16, 16, 4, 8, 24, 8, 64]);
    expect([STATS_RECORD, STATS_CONFIG_MSG, STATS_SHARE_MSG].map((s) => s.sizeBytes)).toEqual([208, 8, 128]);
    expect(STATS_RECORD.offsets).toMatchObject({ version: 0, size: 2, uptime_ms: 16, cpu_user: 24, mem_total_kib: 88, demand: 148, reason: 160 });
    expect(RING.offsets.cons).toBe(64); // producer and consumer indices on separate cache lines
    expect(CHANNEL_LAYOUT.SLOTS_G2C % 64).toBe(0);
  });

  it('pins the header offsets the driver depends on', () => {
    expect(HEADER.offsets).toMatchObject({ magic: 0, version_major: 4, channel_count: 12, region_size: 16, device_status: 40, reset_request: 44, reset_done: 48, data_offset: 72 });
  });

  it('has unique status codes, each with words', () => {
    const codes = Object.values(STATUS).map((s) => s.code);
    expect(new Set(codes).size).toBe(codes.length);
    for (const s of Object.values(STATUS)) expect(s.text.length).toBeGreaterThan(5);
  });

  it('keeps chat in its ranges: types 0x03xx, statuses 50-59 (and 64-69 for cluster mode)', () => {
    const chatTypes = Object.entries(MSG_TYPE).filter(([k]) => k.startsWith('CHAT_')).map(([, v]) => v);
    expect(chatTypes.every((t) => t >= 0x0300 && t < 0x0400)).toBe(true);
    const chatCodes = Object.entries(STATUS).filter(([k]) => k.startsWith('CHAT_')).map(([, v]) => v.code);
    expect(chatCodes.every((c) => (c >= 50 && c <= 59) || (c >= 64 && c <= 69))).toBe(true);
  });

  it('keeps stats in its ranges: types 0x04xx, statuses 60-69', () => {
    const types = Object.entries(MSG_TYPE).filter(([k]) => k.startsWith('STATS_')).map(([, v]) => v);
    expect(types.length).toBe(3);
    expect(types.every((t) => t >= 0x0400 && t < 0x0500)).toBe(true);
    const codes = Object.entries(STATUS).filter(([k]) => k.startsWith('STATS_')).map(([, v]) => v.code);
    expect(codes.every((c) => c >= 60 && c <= 69)).toBe(true);
  });

  it('the committed C header is what the generator writes', () => {
    expect(readFileSync(headerPath, 'utf8')).toBe(generateCHeader());
  });

  it('C compiles the header and agrees with every offset (its _Static_asserts) and size', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'vmgmt-layout-'));
    try {
      const structs = WIRE_STRUCTS;
      const prints = structs.flatMap((s) => [
        `printf("${s.cName} %zu\\n", sizeof(struct ${s.cName}));`,
        ...s.fields.map((f) => `printf("${s.cName}.${f.name} %zu\\n", offsetof(struct ${s.cName}, ${f.name}));`),
      ]);
      writeFileSync(path.join(dir, 'probe.c'), `#include <stdio.h>\n#include "vmgmt_layout.h"\nint main(void) {\n${prints.join('\n')}\nreturn 0; }\n`);
      execFileSync('gcc', ['-std=gnu11', '-Wall', '-Werror', '-I', path.dirname(headerPath), '-o', path.join(dir, 'probe'), path.join(dir, 'probe.c')]);
      const printed = execFileSync(path.join(dir, 'probe'), { encoding: 'utf8' }).trim().split('\n');
      const expected = structs.flatMap((s) => [`${s.cName} ${s.sizeBytes}`, ...s.fields.map((f) => `${s.cName}.${f.name} ${f.offset}`)]);
      expect(printed).toEqual(expected);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('docs/protocol.md', () => {
  it('lists every status code by its number and name', () => {
    const doc = readFileSync(path.join(repoRoot, 'docs/protocol.md'), 'utf8');
    const missing = Object.entries(STATUS).filter(([name, s]) => !doc.includes(`| ${s.code} | ${name} |`)).map(([name]) => name);
    expect(missing).toEqual([]);
  });
});
