//! Copy-on-write views: the private pages each (region, context) mapping
//! holds, and reads through them.

use shm_primitives::{ContextId, RegionHandle, PAGE_SIZE};

use crate::{Map, Page};

/// One mapping's private pages, by page index.
pub(crate) type PrivatePages = Map<u64, Box<Page>>;

/// Every copy-on-write mapping's private pages in one transaction.
#[derive(Default)]
pub(crate) struct PrivateViews {
    views: Map<(RegionHandle, ContextId), PrivatePages>,
    /// Pages held in `views`.
    pages: usize,
}

impl PrivateViews {
    pub(crate) fn pages(&self) -> usize {
        self.pages
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.views.is_empty()
    }

    pub(crate) fn has_view(&self, handle: RegionHandle, context: ContextId) -> bool {
        self.views.contains_key(&(handle, context))
    }

    pub(crate) fn page(
        &self,
        handle: RegionHandle,
        context: ContextId,
        page: u64,
    ) -> Option<&Page> {
        self.views
            .get(&(handle, context))
            .and_then(|view| view.get(&page))
            .map(|page| &**page)
    }

    pub(crate) fn page_mut(
        &mut self,
        handle: RegionHandle,
        context: ContextId,
        page: u64,
    ) -> Option<&mut Page> {
        self.views
            .get_mut(&(handle, context))
            .and_then(|view| view.get_mut(&page))
            .map(|page| &mut **page)
    }

    /// Puts `bytes` in as the private page (replacing any).
    pub(crate) fn insert(
        &mut self,
        handle: RegionHandle,
        context: ContextId,
        page: u64,
        bytes: Box<Page>,
    ) {
        if self
            .views
            .entry((handle, context))
            .or_default()
            .insert(page, bytes)
            .is_none()
        {
            self.pages += 1;
        }
    }

    /// Drops the private page, if there is one.
    pub(crate) fn remove(&mut self, handle: RegionHandle, context: ContextId, page: u64) {
        if let Some(view) = self.views.get_mut(&(handle, context)) {
            if view.remove(&page).is_some() {
                self.pages -= 1;
            }
            if view.is_empty() {
                self.views.remove(&(handle, context));
            }
        }
    }

    /// Takes a whole view out (a remap drops it).
    pub(crate) fn take(
        &mut self,
        handle: RegionHandle,
        context: ContextId,
    ) -> Option<PrivatePages> {
        let view = self.views.remove(&(handle, context))?;
        self.pages -= view.len();
        Some(view)
    }

    /// Puts a whole view back (undo of a remap), replacing what is there.
    pub(crate) fn put(&mut self, handle: RegionHandle, context: ContextId, view: PrivatePages) {
        if let Some(old) = self.take(handle, context) {
            drop(old);
        }
        if !view.is_empty() {
            self.pages += view.len();
            self.views.insert((handle, context), view);
        }
    }

    /// Copies the parts of `context`'s private pages that fall in
    /// `[offset, offset + buf.len())` over `buf`.
    pub(crate) fn overlay(
        &self,
        handle: RegionHandle,
        context: ContextId,
        offset: u64,
        buf: &mut [u8],
    ) {
        let Some(view) = self.views.get(&(handle, context)) else {
            return;
        };
        if buf.is_empty() {
            return;
        }
        let end = offset + buf.len() as u64;
        let (first, last) = (offset / PAGE_SIZE as u64, (end - 1) / PAGE_SIZE as u64);
        for page in first..=last {
            let Some(bytes) = view.get(&page) else {
                continue;
            };
            let page_start = page * PAGE_SIZE as u64;
            let from = offset.max(page_start);
            let to = end.min(page_start + PAGE_SIZE as u64);
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&bytes[(from - page_start) as usize..(to - page_start) as usize]);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.views.clear();
        self.pages = 0;
    }

    pub(crate) fn footprint(&self) -> usize {
        let per_view =
            std::mem::size_of::<(RegionHandle, ContextId)>() + std::mem::size_of::<PrivatePages>();
        let per_slot = std::mem::size_of::<(u64, Box<Page>)>();
        self.views.capacity() * per_view
            + self
                .views
                .values()
                .map(|view| view.capacity() * per_slot + view.len() * PAGE_SIZE)
                .sum::<usize>()
    }
}
