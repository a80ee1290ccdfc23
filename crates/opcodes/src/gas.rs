//! The gas schedule of the five shared-memory instructions (spec §8).

use shm_primitives::words;

/// Gas prices of the shared-memory instructions, configurable; [`Default`] is the
/// spec's schedule. Every figure is chosen against a mainnet opcode doing the
/// same kind of host work, so that the worst case per gas is no worse than the
/// worst mainnet opcode's (measured figures: `docs/gas.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GasSchedule {
    /// SHARED_ALLOC base, also the whole cost of an ALLOC that pushes 0: between a
    /// warm SLOAD (100) and a CREATE's bookkeeping.
    pub alloc_base: u64,
    /// SHARED_ALLOC surcharge per word of a persistent region: a new storage slot's
    /// price (SSTORE from zero, 20,000), as persistent bytes outlive the transaction.
    pub persistent_word: u64,
    /// SHARED_FREE: a registry update, like a warm SSTORE to an existing slot (100).
    pub free: u64,
    /// First touch of a region in a transaction (MAP, READ, WRITE): EIP-2929's
    /// cold account access (2,600).
    pub cold_access: u64,
    /// Later touches: EIP-2929's warm access (100), as TLOAD/TSTORE cost.
    pub warm_access: u64,
    /// Per 32-byte word copied by READ/WRITE: MCOPY/CALLDATACOPY's copy cost (3).
    pub copy_word: u64,
    /// Per 4 KiB page saved in the revert journal (first write to a page in a
    /// frame) and per copy-on-write fault: the linear term of the page price
    /// `g(P) = journal_page·P + P²/journal_page_quad_divisor`.
    pub journal_page: u64,
    /// Divisor of the quadratic term of `g(P)`, `P` being the page buffers the
    /// transaction's journal holds: at 16 the 16,777,216-gas cap of EIP-7825 buys
    /// fewer than 15,000 pages (58 MiB), under spec §8's 64 MiB.
    pub journal_page_quad_divisor: u64,
    /// Surcharge of an ALLOC whose region is a file in a mapped namespace
    /// (file-system work, 120–200 µs on tmpfs): priced like CREATE (32,000).
    pub mapped_alloc: u64,
    /// The same surcharge when the namespace's file system is not memory-backed
    /// (e.g. ext4 under `/tmp`), where the same work took ≈ 1.9 ms per ALLOC
    /// under a sustained attack: ten times CREATE.
    pub mapped_alloc_on_disk: u64,
    /// Divisor of the quadratic term of region memory, `f(w) = 3w + w²/quad`:
    /// EVM memory's own formula (512), applied to all region memory a transaction
    /// allocates, so that region memory is never cheaper than EVM memory.
    pub memory_quad_divisor: u64,
    /// Linear term of `f(w)` per word: EVM memory's 3.
    pub memory_word: u64,
}

impl Default for GasSchedule {
    fn default() -> Self {
        Self {
            alloc_base: 200,
            persistent_word: 20_000,
            free: 100,
            cold_access: 2_600,
            warm_access: 100,
            copy_word: 3,
            journal_page: 200,
            journal_page_quad_divisor: 16,
            mapped_alloc: 32_000,
            mapped_alloc_on_disk: 320_000,
            memory_quad_divisor: 512,
            memory_word: 3,
        }
    }
}

impl GasSchedule {
    /// `f(w)`: the cost of `w` words of region memory.
    ///
    /// ```
    /// let g = shm_opcodes::GasSchedule::default();
    /// assert_eq!(g.memory_cost(0), 0);
    /// assert_eq!(g.memory_cost(512), 3 * 512 + 512);
    /// ```
    pub fn memory_cost(&self, w: u64) -> u64 {
        linear_plus_quadratic(self.memory_word, self.memory_quad_divisor, w)
    }

    /// What adding `added` words costs when the transaction has allocated `w`
    /// already, with the persistent surcharge when `persistent`.
    pub fn growth_cost(&self, w: u64, added: u64, persistent: bool) -> u64 {
        let expansion = self
            .memory_cost(w.saturating_add(added))
            .saturating_sub(self.memory_cost(w));
        let surcharge = if persistent { self.persistent_word } else { 0 };
        expansion.saturating_add(surcharge.saturating_mul(added))
    }

    /// `g(P)`: the price of `P` page buffers held by the journal.
    ///
    /// ```
    /// let g = shm_opcodes::GasSchedule::default();
    /// assert_eq!(g.page_cost(1), 200);
    /// assert_eq!(g.page_cost(256), 200 * 256 + 256 * 256 / 16); // 1 MiB saved: 55,296
    /// ```
    pub fn page_cost(&self, pages: u64) -> u64 {
        linear_plus_quadratic(self.journal_page, self.journal_page_quad_divisor, pages)
    }

    /// What saving `added` more pages costs when the journal holds `held`.
    #[inline]
    pub fn pages_cost(&self, held: u64, added: u64) -> u64 {
        if added == 0 {
            return 0;
        }
        self.page_cost(held.saturating_add(added))
            .saturating_sub(self.page_cost(held))
    }

    /// Cold or warm access.
    #[inline]
    pub fn access(&self, cold: bool) -> u64 {
        if cold {
            self.cold_access
        } else {
            self.warm_access
        }
    }

    /// Copy cost of `len` bytes.
    #[inline]
    pub fn copy(&self, len: u64) -> u64 {
        self.copy_word.saturating_mul(words(len))
    }
}

/// `linear·x + x²/divisor` (a divisor of 0 counts as 1), saturating at `u64::MAX`.
fn linear_plus_quadratic(linear: u64, divisor: u64, x: u64) -> u64 {
    let x = x as u128;
    let cost = linear as u128 * x + x * x / divisor.max(1) as u128;
    u64::try_from(cost).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The prices themselves are checked through the instructions, in
    /// `tests/tests/gas.rs`.
    #[test]
    fn saturation_and_the_pages_the_cap_buys() {
        let g = GasSchedule::default();
        assert_eq!(g.memory_cost(u64::MAX), u64::MAX);
        assert_eq!(g.page_cost(u64::MAX), u64::MAX);
        // The 16,777,216-gas cap buys fewer than 64 MiB of pages.
        let most = (0u64..).find(|&p| g.page_cost(p + 1) > 16_777_216).unwrap();
        assert!(most * 4096 < 60 << 20, "{most} pages");
    }
}
