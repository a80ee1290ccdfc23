//! The tracing events of the recorder. In a binary of its own: tracing caches each
//! callsite's interest globally, so another test hitting the same callsite at the
//! same time without a subscriber could hide an event from this one.

use std::sync::{Arc, Mutex};

use shm_metrics::{HaltCause, MetricsRecorder};
use shm_primitives::{Address, RegionHandle};

fn handle(index: u32) -> RegionHandle {
    RegionHandle::new(index, 1).unwrap()
}

const ALICE: Address = Address::repeat_byte(0xA1);

type Captured = (String, tracing::Level, String, Vec<String>);

/// Collects every event.
#[derive(Default, Clone)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

struct Fields(String, Vec<String>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        } else {
            self.1.push(field.name().to_owned());
        }
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(String::new(), Vec::new());
        event.record(&mut fields);
        let meta = event.metadata();
        self.0
            .lock()
            .unwrap()
            .push((meta.target().to_owned(), *meta.level(), fields.0, fields.1));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn lifecycle_helpers_emit_debug_events_and_hot_paths_do_not() {
    let capture = Capture::default();
    let m = MetricsRecorder::new();
    tracing::subscriber::with_default(capture.clone(), || {
        m.record_region_created(handle(9), 4096);
        m.record_mapping(handle(9), ALICE);
        m.record_read(1);
        m.record_write(1);
        m.record_cow_faults(1);
        m.record_halt(HaltCause::StaticWrite);
        m.record_region_destroyed(handle(9), 4096);
    });
    let events = capture.0.lock().unwrap().clone();
    let summary: Vec<_> = events
        .iter()
        .map(|(target, level, msg, _)| (target.as_str(), *level, msg.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("shm", tracing::Level::DEBUG, "region created"),
            ("shm", tracing::Level::DEBUG, "region mapped"),
            ("shm", tracing::Level::DEBUG, "shared-memory halt"),
            ("shm", tracing::Level::DEBUG, "region destroyed"),
        ]
    );
    assert_eq!(events[0].3, ["handle", "size"]);
    assert_eq!(events[1].3, ["handle", "context"]);
    assert_eq!(events[2].3, ["cause"]);
    // Counting happened as well as logging.
    assert_eq!(m.snapshot().regions_created, 1);
    assert_eq!(m.snapshot().halts.static_write, 1);
}
