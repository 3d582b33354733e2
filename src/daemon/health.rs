//! Pipeline health for the systemd watchdog: the pipeline task beats when frames flow
//! or while it is recovering, so a hung pipeline stops the pings.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Health {
    last: Mutex<Instant>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            last: Mutex::new(Instant::now()),
        }
    }
}

impl Health {
    pub fn beat(&self) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Whether the last beat is younger than `within`.
    pub fn fresh(&self, within: Duration) -> bool {
        self.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
            < within
    }
}
