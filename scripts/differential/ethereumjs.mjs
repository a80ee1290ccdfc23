// Differential run of `evm run` (stock revm 43: shared memory off) against EthereumJS
// (@ethereumjs/vm 10.1.3), an independent EVM in TypeScript (docs/reliability.md).
//
// Each case is a random program installed at the receiver, a prestate of two more
// contracts with random programs and storage that it may call, random calldata, value
// and gas, one legacy transaction from a funded sender. `evm run --json --dump` runs it
// in its own process; EthereumJS runs the same transaction with `runTx` over the same
// block environment (number 0, timestamp 1, coinbase 0, base fee 0, prevrandao 0, gas
// limit 2^64 − 1, chain id 1). Compared: status (success / revert / halt), gas used,
// output, logs, and the post-state root (EthereumJS's, against the root of `evm`'s
// dump loaded into a fresh EthereumJS state). A divergence prints the case (and
// writes it with --out) so that `evm run` can replay it by hand.
//
//   npm ci --prefix scripts/differential
//   node scripts/differential/ethereumjs.mjs [--evm target/ci/evm] [--cases 200]
//        [--seed 1] [--fork Prague] [--out DIR]
//
// Exit status 0 when every case agreed, 1 when one diverged, 2 on a usage error.

import { execFileSync } from 'node:child_process'
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Common, Hardfork, Mainnet } from '@ethereumjs/common'
import { createBlock } from '@ethereumjs/block'
import { createLegacyTx } from '@ethereumjs/tx'
import { MerkleStateManager } from '@ethereumjs/statemanager'
import { createVM, runTx } from '@ethereumjs/vm'
import {
  Account,
  bigIntToBytes,
  bytesToHex,
  createAddressFromString,
  hexToBytes,
  privateToAddress,
  setLengthLeft,
} from '@ethereumjs/util'

// ----- options -----

const args = process.argv.slice(2)
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback
}
const target = process.env.CARGO_TARGET_DIR ?? 'target'
const evmPath = option('evm', join(target, 'ci', 'evm'))
const cases = Number(option('cases', '200'))
const seed = Number(option('seed', '1'))
const fork = option('fork', 'Prague')
const outDir = option('out', undefined)
const hardforks = { Cancun: Hardfork.Cancun, Prague: Hardfork.Prague }
if (!Number.isInteger(cases) || cases < 1 || !Number.isInteger(seed) || !(fork in hardforks)) {
  console.error(`usage: ethereumjs.mjs [--evm PATH] [--cases N] [--seed N] [--fork ${Object.keys(hardforks).join('|')}] [--out DIR]`)
  process.exit(2)
}
const common = new Common({ chain: Mainnet, hardfork: hardforks[fork] })

// ----- random programs -----

let state = BigInt(seed) * 0x9e3779b97f4a7c15n + 1n
const mask = (1n << 64n) - 1n
function next() {
  state ^= state >> 12n
  state ^= (state << 25n) & mask
  state ^= state >> 27n
  return Number(((state * 0x2545f4914f6cdd1dn) & mask) >> 32n)
}
const below = (n) => next() % n
const pick = (xs) => xs[below(xs.length)]
const hex = (bytes) => Buffer.from(bytes).toString('hex')

const RECEIVER = '0x0000000000000000000000007265636569766572'
const OTHERS = ['0x00000000000000000000000000000000000000a1', '0x00000000000000000000000000000000000000a2']
const KEY = hexToBytes('0x' + '42'.repeat(32))
const SENDER = bytesToHex(privateToAddress(KEY))

// Opcodes valid on Cancun and Prague (JUMP, JUMPI and INVALID left to the raw
// bytes, which halt often enough), never 0xE0–0xE4 (shared memory is off: there
// they are invalid in both, which the fuzz targets cover instead).
const OPS = [
  0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x10, 0x11, 0x12, 0x13,
  0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x20, 0x30, 0x31, 0x32, 0x33, 0x34,
  0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f, 0x40, 0x41, 0x42, 0x43, 0x44,
  0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x58, 0x59, 0x5a, 0x5b,
  0x5c, 0x5d, 0x5e, 0x5f, 0x80, 0x81, 0x82, 0x8f, 0x90, 0x91, 0x9f, 0xa0, 0xa1, 0xa2, 0xf0, 0xf1,
  0xf2, 0xf3, 0xf4, 0xf5, 0xfa, 0xfd, 0xff,
]

function push(code, value) {
  let v = BigInt(value)
  const bytes = []
  while (v > 0n) {
    bytes.unshift(Number(v & 0xffn))
    v >>= 8n
  }
  if (bytes.length === 0) code.push(0x5f)
  else code.push(0x5f + bytes.length, ...bytes)
}

function word() {
  switch (below(5)) {
    case 0:
    case 1:
      return below(64)
    case 2:
      return BigInt(next()) << 32n | BigInt(next())
    case 3:
      return BigInt(pick([RECEIVER, ...OTHERS]))
    default: {
      let v = 0n
      for (let i = 0; i < 8; i++) v = (v << 32n) | BigInt(next())
      return v
    }
  }
}

function program() {
  const code = []
  for (const v of [3, 0, 32, 1, 7]) push(code, v)
  const steps = below(40)
  for (let s = 0; s < steps; s++) {
    const choice = below(30)
    switch (choice < 12 ? 0 : choice < 19 ? 3 : choice < 23 ? 7 : choice < 25 ? 9 : choice < 27 ? 10 : choice === 29 ? 11 : 0) {
      case 0:
        push(code, word()); break
      case 3:
        code.push(pick(OPS)); break
      case 7: {
        const kind = pick([0xf1, 0xf2, 0xf4, 0xfa])
        for (const v of [32, 0, 32, 0]) push(code, v)
        if (kind === 0xf1 || kind === 0xf2) push(code, below(2))
        push(code, below(4) === 0 ? 4 : BigInt(pick([RECEIVER, ...OTHERS])))
        push(code, below(200000))
        code.push(kind)
        break
      }
      case 9:
        push(code, below(256)); push(code, below(4)); code.push(0x55); break
      case 10: {
        const topics = below(3)
        for (let t = 0; t < topics; t++) push(code, t)
        push(code, below(64)); push(code, 0); code.push(0xa0 + topics)
        break
      }
      default: // raw bytes, rarely: most are invalid opcodes
        for (let i = 0, n = 1 + below(8); i < n; i++) code.push(below(256))
    }
  }
  switch (below(4)) {
    case 0: code.push(0x00); break
    case 1: code.push(0x60, 0x40, 0x5f, 0xf3); break
    case 2: code.push(0x60, 0x20, 0x5f, 0xfd); break
  }
  // No 0xE0–0xE4 at an opcode position (PUSH data may hold them).
  for (let i = 0; i < code.length; i++) {
    if (code[i] >= 0xe0 && code[i] <= 0xe4) code[i] = 0x5b
    if (code[i] >= 0x60 && code[i] <= 0x7f) i += code[i] - 0x5f
  }
  return code
}

function randomCase(index) {
  const prestate = {
    [SENDER]: { balance: '0x' + (10n ** 24n).toString(16), nonce: '0x0', code: '0x', storage: {} },
  }
  const code = program()
  for (const address of [RECEIVER, ...OTHERS]) {
    const storage = {}
    for (let i = 0, n = below(3); i < n; i++) storage['0x' + below(4).toString(16)] = '0x' + (1 + below(1000)).toString(16)
    prestate[address] = {
      balance: '0x' + below(1000).toString(16),
      nonce: '0x1',
      code: '0x' + hex(address === RECEIVER ? code : program()),
      storage,
    }
  }
  const input = Array.from({ length: below(48) }, () => (below(3) === 0 ? 0 : below(256)))
  return {
    index,
    prestate,
    code: '0x' + hex(code),
    input: '0x' + hex(input),
    gas: 21000 + below(3_000_000),
    value: below(4) === 0 ? below(1000) : 0,
  }
}

// ----- the two implementations -----

function runRevm(c, dir) {
  const pre = join(dir, `pre-${c.index}.json`)
  writeFileSync(pre, JSON.stringify(c.prestate))
  const out = execFileSync(evmPath, [
    'run', '--json', '--dump', '--fork', fork, '--prestate', pre, '--sender', SENDER,
    '--receiver', RECEIVER, '--gas', String(c.gas), '--value', String(c.value),
    '--code', c.code, '--input', c.input,
  ], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).toString()
  return JSON.parse(out)
}

// `evm run` exits 1 on a revert and 4 on a halt, still printing its JSON.
function runRevmAnyStatus(c, dir) {
  try {
    return runRevm(c, dir)
  } catch (e) {
    if (e.stdout && e.stdout.length > 0) return JSON.parse(e.stdout.toString())
    throw new Error(`evm run failed (status ${e.status}): ${e.stderr}`)
  }
}

async function loadState(sm, accounts) {
  for (const [address, a] of Object.entries(accounts)) {
    const addr = createAddressFromString(address)
    await sm.putAccount(addr, new Account(BigInt(a.nonce), BigInt(a.balance)))
    if (a.code && a.code !== '0x') await sm.putCode(addr, hexToBytes(a.code))
    for (const [slot, value] of Object.entries(a.storage ?? {})) {
      const v = BigInt(value)
      if (v === 0n) continue
      await sm.putStorage(addr, setLengthLeft(bigIntToBytes(BigInt(slot)), 32), bigIntToBytes(v))
    }
  }
}

async function runEthereumJs(c) {
  const vm = await createVM({ common: common.copy() })
  await loadState(vm.stateManager, c.prestate)
  const block = createBlock(
    {
      header: {
        number: 0n,
        timestamp: 1n,
        gasLimit: (1n << 64n) - 1n,
        baseFeePerGas: 0n,
        excessBlobGas: 0n,
        blobGasUsed: 0n,
        parentBeaconBlockRoot: new Uint8Array(32),
        requestsHash: fork === 'Prague' ? hexToBytes('0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855') : undefined,
      },
    },
    { common: vm.common, skipConsensusFormatValidation: true },
  )
  const tx = createLegacyTx(
    { nonce: 0n, gasPrice: 0n, gasLimit: BigInt(c.gas), to: RECEIVER, value: BigInt(c.value), data: hexToBytes(c.input) },
    { common: vm.common },
  ).sign(KEY)
  const result = await runTx(vm, { tx, block, skipBlockGasLimitValidation: true, skipHardForkValidation: true })
  const error = result.execResult.exceptionError
  return {
    status: error === undefined ? 'success' : error.error === 'revert' ? 'revert' : 'halt',
    error: error?.error,
    gas_used: Number(result.totalGasSpent),
    output: bytesToHex(result.execResult.returnValue),
    logs: (result.execResult.logs ?? []).map(([address, topics, data]) => ({
      address: bytesToHex(address),
      topics: topics.map(bytesToHex),
      data: bytesToHex(data),
    })),
    root: bytesToHex(await vm.stateManager.getStateRoot()),
    vm,
  }
}

async function rootOfDump(dump) {
  const sm = new MerkleStateManager({ common: common.copy() })
  await loadState(sm, dump)
  return bytesToHex(await sm.getStateRoot())
}

// ----- the run -----

const norm = (h) => (h ?? '0x').toLowerCase()
const scratch = mkdtempSync(join(tmpdir(), 'ejs-diff-'))
const divergences = []
const counts = { success: 0, revert: 0, halt: 0 }
const haltErrors = {}
for (let i = 0; i < cases; i++) {
  const c = randomCase(i)
  const revm = runRevmAnyStatus(c, scratch)
  const ejs = await runEthereumJs(c)
  const revmRoot = await rootOfDump(revm.post_state)
  const differences = []
  if (revm.status !== ejs.status) differences.push(`status ${revm.status} / ${ejs.status} (${ejs.error})`)
  if (revm.gas_used !== ejs.gas_used) differences.push(`gas used ${revm.gas_used} / ${ejs.gas_used}`)
  if (norm(revm.output) !== norm(ejs.output)) differences.push(`output ${revm.output} / ${ejs.output}`)
  const revmLogs = JSON.stringify((revm.logs ?? []).map((l) => ({ ...l, address: l.address.toLowerCase() })))
  if (revmLogs !== JSON.stringify(ejs.logs)) differences.push(`logs ${revmLogs} / ${JSON.stringify(ejs.logs)}`)
  if (revmRoot !== ejs.root) differences.push(`state root ${revmRoot} / ${ejs.root}`)
  counts[revm.status] = (counts[revm.status] ?? 0) + 1
  const kind = ejs.error?.split(' at ')[0]
  if (ejs.status === 'halt') haltErrors[kind] = (haltErrors[kind] ?? 0) + 1
  if (differences.length > 0) {
    divergences.push({ case: c, differences })
    console.log(`case ${i}: DIVERGES: ${differences.join('; ')}`)
    console.log(`  evm run --fork ${fork} --sender ${SENDER} --gas ${c.gas} --value ${c.value} --code ${c.code} --input ${c.input} --prestate <case ${i} prestate>`)
  }
}
if (outDir && divergences.length > 0) {
  mkdirSync(outDir, { recursive: true })
  writeFileSync(join(outDir, 'divergences.json'), JSON.stringify(divergences, null, 1))
}
console.log(
  `ethereumjs differential (${fork}, seed ${seed}): ${cases - divergences.length} agreed, ${divergences.length} diverged ` +
    `(revm: ${counts.success} success, ${counts.revert} revert, ${counts.halt} halt)`,
)
console.log(`halts by EthereumJS error: ${JSON.stringify(haltErrors)}`)
process.exit(divergences.length === 0 ? 0 : 1)
