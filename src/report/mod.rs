//! Renderers and fix output.
