//! The streaming path allocates nothing per frame on the Rust side: a counting global
//! allocator sees the same total after frame 10 as after frame 40.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use gst::prelude::*;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn no_rust_allocation_per_frame_once_streaming() {
    init();
    let pipeline = gst::parse::launch(
        "videotestsrc num-buffers=41 pattern=smpte75 ! video/x-raw,format=I420,width=160,height=120 \
         ! stylize name=st inference-size=64 ! fakesink name=sink sync=false",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    // Allocation counts seen when frames 10 and 40 leave the element.
    let marks: Arc<Mutex<[usize; 2]>> = Default::default();
    let seen = Arc::new(AtomicUsize::new(0));
    let (m, s) = (marks.clone(), seen.clone());
    pipeline
        .by_name("st")
        .unwrap()
        .static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            match s.fetch_add(1, Ordering::SeqCst) + 1 {
                10 => m.lock().unwrap()[0] = ALLOCATIONS.load(Ordering::SeqCst),
                40 => m.lock().unwrap()[1] = ALLOCATIONS.load(Ordering::SeqCst),
                _ => {}
            }
            gst::PadProbeReturn::Ok
        });
    let out = drive(&pipeline, None, |_| {});
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(seen.load(Ordering::SeqCst), 41);
    let [at10, at40] = *marks.lock().unwrap();
    assert!(at10 > 0, "the counter saw start-up allocations");
    println!(
        "Rust allocations between frame 10 and frame 40: {}",
        at40 - at10
    );
    assert_eq!(at40 - at10, 0, "allocations over 30 frames");
}
