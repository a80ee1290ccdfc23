//! Which frame saved a page: frame ids merged on commit by union-find, so a
//! commit costs O(1) however many pages its frame (and its committed
//! children) saved.

/// An open checkpoint.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Frame {
    /// Length of the journal's entry log when the checkpoint was taken.
    pub(crate) start: usize,
    /// The frame's id once it (or a committed child) saved a page; 0 before.
    pub(crate) id: u32,
    /// The transaction's page charge (`P`) when the checkpoint was taken: a
    /// revert frees every page buffer charged since, so `P` goes back to it.
    pub(crate) pages: u64,
}

/// The open frames and the union-find forest over the ids of frames that
/// saved pages in this transaction.
///
/// A page save is tagged with the id of the frame that made it. When a frame
/// commits, its id is merged into its parent's, so every tag it (or its
/// committed children) left now resolves to the parent: "a page saved by a
/// committed child counts as saved in the parent" (spec §8), without walking
/// the child's pages.
#[derive(Debug, Default)]
pub(crate) struct Frames {
    open: Vec<Frame>,
    /// `parent[id]`; ids start at 1 (index 0 is unused).
    parent: Vec<u32>,
}

impl Frames {
    #[inline]
    pub(crate) fn push(&mut self, start: usize, pages: u64) {
        self.open.push(Frame {
            start,
            id: 0,
            pages,
        });
    }

    pub(crate) fn depth(&self) -> usize {
        self.open.len()
    }

    /// Commits the innermost frame into its parent. O(1) (amortised).
    #[inline]
    pub(crate) fn commit(&mut self) -> Option<Frame> {
        let child = self.open.pop()?;
        if child.id != 0 {
            if let Some(parent) = self.open.last_mut() {
                if parent.id == 0 {
                    // The parent saved nothing itself: it takes the child's id.
                    parent.id = child.id;
                } else {
                    self.parent[child.id as usize] = parent.id;
                }
            }
        }
        Some(child)
    }

    /// Pops the innermost frame for a revert (its tags are undone by the caller).
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<Frame> {
        self.open.pop()
    }

    /// The id of the innermost frame, made if it had none.
    pub(crate) fn current_id(&mut self) -> Option<u32> {
        let next = self.parent.len().max(1) as u32;
        let frame = self.open.last_mut()?;
        if frame.id == 0 {
            if self.parent.is_empty() {
                self.parent.push(0);
            }
            self.parent.push(next);
            frame.id = next;
        }
        Some(frame.id)
    }

    /// Whether a save tagged `tag` belongs to the innermost frame (made by it
    /// or by a child that committed into it).
    pub(crate) fn is_current(&mut self, tag: u32) -> bool {
        match self.open.last().map(|frame| frame.id) {
            Some(id) if id != 0 => self.find(tag) == id,
            _ => false,
        }
    }

    fn find(&mut self, mut id: u32) -> u32 {
        // Path halving: each step points a node at its grandparent.
        while let Some(&up) = self.parent.get(id as usize) {
            if up == id {
                break;
            }
            let grand = self.parent[up as usize];
            self.parent[id as usize] = grand;
            id = up;
        }
        id
    }

    /// Forgets every frame (transaction end).
    pub(crate) fn clear(&mut self) {
        self.open.clear();
        self.parent.clear();
    }

    pub(crate) fn footprint(&self) -> usize {
        self.open.capacity() * std::mem::size_of::<Frame>()
            + self.parent.capacity() * std::mem::size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_children_count_for_their_parents() {
        let mut frames = Frames::default();
        frames.push(0, 0); // a
        frames.push(0, 0); // b
        let b = frames.current_id().unwrap();
        frames.push(0, 0); // c
        let c = frames.current_id().unwrap();
        assert!(frames.is_current(c) && !frames.is_current(b));
        frames.commit(); // c into b
        assert!(frames.is_current(c) && frames.is_current(b));
        frames.commit(); // b into a, which takes b's id
        assert!(frames.is_current(c) && frames.is_current(b));
        frames.push(0, 0); // d: a new frame has saved nothing
        assert!(!frames.is_current(b));
        let d = frames.current_id().unwrap();
        frames.commit();
        assert!(frames.is_current(d) && frames.is_current(c));
    }

    #[test]
    fn deep_chains_resolve() {
        let mut frames = Frames::default();
        for _ in 0..1000 {
            frames.push(0, 0);
            frames.current_id();
        }
        let deepest = frames.current_id().unwrap();
        for _ in 0..999 {
            frames.commit();
        }
        assert!(frames.is_current(deepest));
        assert_eq!(frames.depth(), 1);
    }
}
