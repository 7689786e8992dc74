//! SIGINT (Ctrl-C) and SIGTERM during `train`: before training begins they end the process at
//! once (nothing has been written); once it runs (from just before `--log` is created), the first one stops it after the current
//! iteration or chunk so the outputs are still written, and a second one quits at once. Once
//! training is over, a first signal gives up the outputs still waiting for a reader (a FIFO).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// The exit status of a run ended by `signal`, as shells report it: 128 + the number.
pub fn exit_status(signal: i32) -> u8 {
    (128 + signal).clamp(0, 255) as u8
}

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

fn name(signal: i32) -> &'static str {
    match signal {
        SIGTERM => "terminated (SIGTERM)",
        _ => "interrupted (SIGINT)",
    }
}

/// The handlers' shared state; `install` returns it.
#[derive(Clone)]
pub struct StopSignals {
    /// Set by the first signal once training runs: the loop stops (reason `interrupted`).
    flag: Arc<AtomicBool>,
    /// Set once the run begins (just before `--log` is created, or at the first check);
    /// before that a signal exits at once.
    training: Arc<AtomicBool>,
    /// The first signal that set `flag` (0: none).
    first: Arc<AtomicI32>,
    /// Set when training is over and the outputs are written: a first signal then gives up
    /// the outputs that still wait for a reader (a FIFO).
    writing: Arc<AtomicBool>,
}

impl StopSignals {
    /// Marks that training has begun: from now on a first signal stops it gracefully.
    pub fn training(&self) {
        self.training.store(true, Ordering::SeqCst);
    }

    /// The flag [`training`](Self::training) sets, for whoever begins the run to set it
    /// (`TrainJob::started`: just before the log is created, which truncates it).
    pub fn started(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.training)
    }

    /// Marks that training is over and the outputs are being written.
    pub fn writing(&self) {
        self.writing.store(true, Ordering::SeqCst);
    }

    /// What to do when `signal` arrives.
    fn on(&self, signal: i32) {
        if !self.training.load(Ordering::SeqCst) {
            crate::progress::eprintln_above(&format!(
                "wgtrain: {} before training began; nothing was written",
                name(signal)
            ));
            std::process::exit(i32::from(exit_status(signal)));
        }
        if self.flag.swap(true, Ordering::SeqCst) {
            std::process::exit(i32::from(exit_status(signal)));
        }
        self.first.store(signal, Ordering::SeqCst);
        let doing = if self.writing.load(Ordering::SeqCst) {
            "giving up the outputs still waiting for a reader"
        } else {
            "stopping after the current iteration"
        };
        crate::progress::eprintln_above(&format!(
            "wgtrain: {}: {doing} (a second signal quits at once)",
            name(signal)
        ));
    }

    /// The exit status the run should end with: 128 + the signal that stopped it, if any.
    pub fn exit_status(&self) -> Option<u8> {
        match self.first.load(Ordering::SeqCst) {
            0 => None,
            s => Some(exit_status(s)),
        }
    }
}

/// Installs the handlers; the first signal during training sets `flag`.
pub fn install(flag: Arc<AtomicBool>) -> StopSignals {
    let state = StopSignals {
        flag,
        training: Arc::new(AtomicBool::new(false)),
        first: Arc::new(AtomicI32::new(0)),
        writing: Arc::new(AtomicBool::new(false)),
    };
    if let Err(e) = listen(state.clone()) {
        log::warn!("Ctrl-C and SIGTERM will end the run without writing results: {e}");
    }
    state
}

#[cfg(unix)]
fn listen(state: StopSignals) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("wgtrain-signals".into())
        .spawn(move || {
            for s in signals.forever() {
                state.on(s);
            }
        })?;
    Ok(())
}

#[cfg(not(unix))]
fn listen(state: StopSignals) -> std::io::Result<()> {
    ctrlc::set_handler(move || state.on(SIGINT)).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_128_plus_the_signal() {
        assert_eq!(exit_status(SIGINT), 130);
        assert_eq!(exit_status(SIGTERM), 143);
        let s = StopSignals {
            flag: Arc::new(AtomicBool::new(false)),
            training: Arc::new(AtomicBool::new(true)),
            first: Arc::new(AtomicI32::new(0)),
            writing: Arc::new(AtomicBool::new(false)),
        };
        assert_eq!(s.exit_status(), None);
        s.on(SIGTERM);
        assert!(s.flag.load(Ordering::SeqCst));
        assert_eq!(s.exit_status(), Some(143));
    }
}
