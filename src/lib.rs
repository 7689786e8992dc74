//! wgtrain: classifiers of two or more classes (logistic regression, MLPs) trained by
//! gradient descent (full batch or mini-batches; SGD, momentum, Adam, AdamW: [`optim`]) on the
//! GPU through wgpu, or on the CPU, stopped at the exact iteration a rule holds.
//!
//! Data flows one way: [`data`] → [`model::ModelSpec`] → [`backend`] (CPU | GPU) →
//! [`train::train`] with a [`stop::StopRule`] → [`report`].

pub mod atomic;
pub mod backend;
pub mod batches;
pub mod bench;
pub mod cli;
pub mod data;
pub mod early_bird;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod job;
pub mod masks;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod modelfile;
pub mod optim;
pub mod outputs;
pub mod plot;
pub mod predict;
pub mod progress;
pub mod prune;
pub mod report;
pub mod runlog;
pub mod signals;
pub mod stop;
pub mod train;

pub use error::{Error, Result};
