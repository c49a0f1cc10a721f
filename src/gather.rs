//! Inventory + scope -> Evidence.
