//! Pure helpers every stage may use: durations and Kubernetes quantities as they are written.
//! They import nothing of the project.

pub mod duration;
pub mod quantity;
