// EthereumJS (@ethereumjs/vm 10.1.3) on a sample of the Ethereum state tests, the
// fixtures `evm statetest` passes in full (docs/reliability.md). Every case of the
// chosen fork in the sampled files runs its signed transaction (`txbytes`) with
// `runTx` over the fixture's prestate and block environment; the post-state root and
// the logs hash must equal the fixture's, and an expected exception must be one. A
// case where EthereumJS disagrees with the fixture is one where it disagrees with
// revm, which agrees with every fixture.
//
//   npm ci --prefix scripts/differential
//   node scripts/differential/ethereumjs-statetests.mjs [--tests ../shared/ethereum-tests/GeneralStateTests]
//        [--every 10] [--fork Cancun] [--skip tests/statetest-skip.txt]
//
// `--every N` takes every N-th fixture file in path order. Exit status 0 when every
// case agreed, 1 otherwise, 2 on a usage error.

import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { Common, Hardfork, Mainnet } from '@ethereumjs/common'
import { createBlock } from '@ethereumjs/block'
import { createTxFromRLP } from '@ethereumjs/tx'
import { RLP } from '@ethereumjs/rlp'
import { createVM, runTx } from '@ethereumjs/vm'
import { Account, bigIntToBytes, bytesToHex, createAddressFromString, hexToBytes, setLengthLeft } from '@ethereumjs/util'
import { keccak_256 } from '@noble/hashes/sha3.js'

const args = process.argv.slice(2)
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback
}
const root = option('tests', '../shared/ethereum-tests/GeneralStateTests')
const every = Number(option('every', '10'))
const fork = option('fork', 'Cancun')
const skipFile = option('skip', 'tests/statetest-skip.txt')
const hardforks = { Cancun: Hardfork.Cancun, Prague: Hardfork.Prague }
if (!Number.isInteger(every) || every < 1 || !(fork in hardforks)) {
  console.error(`usage: ethereumjs-statetests.mjs [--tests DIR] [--every N] [--fork ${Object.keys(hardforks).join('|')}] [--skip FILE]`)
  process.exit(2)
}
// The files `evm statetest` skips (with reasons) are skipped here too.
const skipped = readFileSync(skipFile, 'utf8')
  .split('\n')
  .map((l) => l.split('#')[0].trim().split(/\s+/)[0])
  .filter((l) => l)

function walk(dir, out) {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) walk(path, out)
    else if (name.endsWith('.json')) out.push(path)
  }
  return out
}

const NEEDS_KZG = 'needs KZG'
const num = (hex) => (hex === undefined ? undefined : BigInt(hex))

async function runCase(vmCommon, unit, post) {
  const vm = await createVM({ common: vmCommon.copy() })
  for (const [address, a] of Object.entries(unit.pre)) {
    const addr = createAddressFromString(address)
    await vm.stateManager.putAccount(addr, new Account(BigInt(a.nonce), BigInt(a.balance)))
    if (a.code && a.code !== '0x') await vm.stateManager.putCode(addr, hexToBytes(a.code))
    for (const [slot, value] of Object.entries(a.storage ?? {})) {
      if (BigInt(value) === 0n) continue
      await vm.stateManager.putStorage(addr, setLengthLeft(bigIntToBytes(BigInt(slot)), 32), bigIntToBytes(BigInt(value)))
    }
  }
  const env = unit.env
  const block = createBlock(
    {
      header: {
        number: num(env.currentNumber),
        timestamp: num(env.currentTimestamp),
        gasLimit: num(env.currentGasLimit),
        coinbase: env.currentCoinbase,
        baseFeePerGas: num(env.currentBaseFee) ?? 0n,
        mixHash: env.currentRandom ? setLengthLeft(hexToBytes(env.currentRandom), 32) : undefined,
        difficulty: 0n,
        excessBlobGas: num(env.currentExcessBlobGas) ?? 0n,
        blobGasUsed: 0n,
        parentBeaconBlockRoot: new Uint8Array(32),
        requestsHash: fork === 'Prague' ? hexToBytes('0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855') : undefined,
      },
    },
    { common: vm.common, skipConsensusFormatValidation: true },
  )
  let result
  try {
    const tx = createTxFromRLP(hexToBytes(post.txbytes), { common: vm.common })
    result = await runTx(vm, { tx, block })
  } catch (e) {
    // EthereumJS ships no KZG backend (one is passed in through `common.customCrypto`);
    // a case that needs one is counted apart, not as a disagreement.
    if (/kzg not initialized|customCrypto.kzg/i.test(e.message)) return NEEDS_KZG
    return post.expectException ? null : `transaction refused: ${e.message.split('\n')[0]}`
  }
  if (post.expectException) return `expected exception ${post.expectException}, but the transaction ran`
  const root = bytesToHex(await vm.stateManager.getStateRoot())
  const logs = bytesToHex(keccak_256(RLP.encode(result.execResult.logs ?? [])))
  if (root !== post.hash.toLowerCase()) return `state root ${root}, expected ${post.hash}`
  if (logs !== post.logs.toLowerCase()) return `logs hash ${logs}, expected ${post.logs}`
  return null
}

const common = new Common({ chain: Mainnet, hardfork: hardforks[fork] })
const files = walk(root, []).filter((_, i) => i % every === 0)
let passed = 0
let failed = 0
let skippedCases = 0
let needsKzg = 0
const failures = []
for (const file of files) {
  const rel = relative(root, file)
  const fixture = JSON.parse(readFileSync(file, 'utf8'))
  const skip = skipped.some((s) => rel.startsWith(s) || file.endsWith(s))
  for (const [name, unit] of Object.entries(fixture)) {
    const posts = unit.post?.[fork] ?? []
    if (skip || posts.some((p) => !p.txbytes)) {
      skippedCases += posts.length
      continue
    }
    const chain = unit.env.currentChainId ? BigInt(unit.env.currentChainId) : 1n
    const caseCommon = chain === 1n ? common : new Common({ chain: { ...Mainnet, chainId: chain }, hardfork: hardforks[fork] })
    for (const post of posts) {
      let problem
      try {
        problem = await runCase(caseCommon, unit, post)
      } catch (e) {
        problem = `EthereumJS threw: ${e.message.split('\n')[0]}`
      }
      if (problem === null) passed++
      else if (problem === NEEDS_KZG) needsKzg++
      else {
        failed++
        failures.push(`${rel} ${name} ${JSON.stringify(post.indexes)}: ${problem}`)
      }
    }
  }
}
for (const f of failures) console.log(f)
console.log(`ethereumjs statetests (${fork}, every ${every}th of the files: ${files.length}): ${passed} passed, ${failed} failed, ${skippedCases + needsKzg} skipped (${needsKzg} need a KZG backend EthereumJS does not ship)`)
process.exit(failed === 0 ? 0 : 1)
