//! Manifest files (-f) to an Inventory.
