//! Sources gather facts and never judge: the live cluster (`cluster`), manifest files
//! (`manifest`), Envoy's admin API and saved dumps (`envoy`), and the streaming probe (`probe`).
//! Each fills the evidence vocabulary; what it could not read becomes a `Gap`. A new source is one
//! folder here.

pub mod cluster;
pub mod envoy;
pub mod manifest;
pub mod probe;
pub mod progress;
pub mod stop;
