//! The free list of the slot table: which empty slots may be reused.

/// Positions of empty slots that may be reused, as a bit set, lowest first:
/// taking and returning a slot (under the table lock) only flips a bit, and
/// never allocates once the set has grown to the highest position used.
#[derive(Debug, Default)]
pub(crate) struct FreeSlots {
    words: Vec<u64>,
    /// Every word below this one is zero: where the search for the lowest
    /// free position starts.
    lowest: usize,
}

impl FreeSlots {
    #[inline]
    pub(crate) fn first(&self) -> Option<u32> {
        let (index, word) = self
            .words
            .iter()
            .enumerate()
            .skip(self.lowest)
            .find(|(_, word)| **word != 0)?;
        // Positions come from `u32`s, so this fits.
        Some((index * 64) as u32 + word.trailing_zeros())
    }

    pub(crate) fn insert(&mut self, position: u32) {
        let (index, bit) = Self::locate(position);
        if index >= self.words.len() {
            self.words.resize(index + 1, 0);
        }
        self.words[index] |= bit;
        self.lowest = self.lowest.min(index);
    }

    pub(crate) fn remove(&mut self, position: u32) {
        let (index, bit) = Self::locate(position);
        if let Some(word) = self.words.get_mut(index) {
            *word &= !bit;
        }
        while self.words.get(self.lowest) == Some(&0) {
            self.lowest += 1;
        }
    }

    #[inline]
    fn locate(position: u32) -> (usize, u64) {
        ((position / 64) as usize, 1 << (position % 64))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::FreeSlots;

    proptest! {
        /// The bit set answers as an ordered set does, whatever the sequence.
        #[test]
        fn agrees_with_an_ordered_set(ops in prop::collection::vec((any::<bool>(), 0u32..300), 0..200)) {
            let (mut slots, mut model) = (FreeSlots::default(), BTreeSet::new());
            for (insert, position) in ops {
                if insert {
                    slots.insert(position);
                    model.insert(position);
                } else {
                    slots.remove(position);
                    model.remove(&position);
                }
                prop_assert_eq!(slots.first(), model.first().copied());
            }
        }
    }

    #[test]
    fn coming_and_going_does_not_grow_it() {
        let mut slots = FreeSlots::default();
        slots.insert(130);
        let capacity = slots.words.capacity();
        for _ in 0..1000 {
            slots.remove(130);
            assert_eq!(slots.first(), None);
            slots.insert(130);
            assert_eq!(slots.first(), Some(130));
        }
        assert_eq!(slots.words.capacity(), capacity);
    }
}
