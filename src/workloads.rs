//! Finding inference workloads (vLLM) in an Inventory.
