//! Planning on fixed cost constants, so `pg_nlq.max_cost` means the same for every caller.
//!
//! The planner's cost constants are ordinary settings any role may change in its session (or
//! store for itself with `ALTER ROLE ... SET`): with `SET seq_page_cost = 0` and friends, a
//! cross join costs next to nothing. While pg_nlq plans a query it therefore sets every setting
//! that can lower an estimate to PostgreSQL's compiled-in default (as `pg_settings.boot_val`
//! shows it), and puts the caller's values back afterwards, on error too. Settings that can
//! only raise an estimate (the `enable_*` switches that are on by default) are left alone.
//! A DBA who tuned the constants in `postgresql.conf` sets `pg_nlq.max_cost` in these units.

use pgrx::pg_sys;

/// PostgreSQL 15's compiled-in defaults of the settings that can lower a plan's cost.
mod boot {
    pub const SEQ_PAGE_COST: f64 = 1.0;
    pub const RANDOM_PAGE_COST: f64 = 4.0;
    pub const CPU_TUPLE_COST: f64 = 0.01;
    pub const CPU_INDEX_TUPLE_COST: f64 = 0.005;
    pub const CPU_OPERATOR_COST: f64 = 0.0025;
    pub const PARALLEL_TUPLE_COST: f64 = 0.1;
    pub const PARALLEL_SETUP_COST: f64 = 1000.0;
    pub const RECURSIVE_WORKTABLE_FACTOR: f64 = 10.0;
    /// 4 GB in 8 kB pages
    pub const EFFECTIVE_CACHE_SIZE: i32 = 524_288;
    pub const MAX_PARALLEL_WORKERS_PER_GATHER: i32 = 2;
    pub const PARALLEL_LEADER_PARTICIPATION: bool = true;
    /// 8 MB and 512 kB in 8 kB pages
    pub const MIN_PARALLEL_TABLE_SCAN_SIZE: i32 = 1024;
    pub const MIN_PARALLEL_INDEX_SCAN_SIZE: i32 = 64;
    /// kB
    pub const WORK_MEM: i32 = 4096;
    pub const HASH_MEM_MULTIPLIER: f64 = 2.0;
    pub const ENABLE_PARTITIONWISE_JOIN: bool = false;
    pub const ENABLE_PARTITIONWISE_AGGREGATE: bool = false;
}

/// The caller's values, put back when dropped.
pub struct FixedCosts {
    saved: Values,
}

#[derive(Clone, Copy)]
struct Values {
    seq_page_cost: f64,
    random_page_cost: f64,
    cpu_tuple_cost: f64,
    cpu_index_tuple_cost: f64,
    cpu_operator_cost: f64,
    parallel_tuple_cost: f64,
    parallel_setup_cost: f64,
    recursive_worktable_factor: f64,
    effective_cache_size: i32,
    max_parallel_workers_per_gather: i32,
    parallel_leader_participation: bool,
    min_parallel_table_scan_size: i32,
    min_parallel_index_scan_size: i32,
    work_mem: i32,
    hash_mem_multiplier: f64,
    enable_partitionwise_join: bool,
    enable_partitionwise_aggregate: bool,
}

const BOOT: Values = Values {
    seq_page_cost: boot::SEQ_PAGE_COST,
    random_page_cost: boot::RANDOM_PAGE_COST,
    cpu_tuple_cost: boot::CPU_TUPLE_COST,
    cpu_index_tuple_cost: boot::CPU_INDEX_TUPLE_COST,
    cpu_operator_cost: boot::CPU_OPERATOR_COST,
    parallel_tuple_cost: boot::PARALLEL_TUPLE_COST,
    parallel_setup_cost: boot::PARALLEL_SETUP_COST,
    recursive_worktable_factor: boot::RECURSIVE_WORKTABLE_FACTOR,
    effective_cache_size: boot::EFFECTIVE_CACHE_SIZE,
    max_parallel_workers_per_gather: boot::MAX_PARALLEL_WORKERS_PER_GATHER,
    parallel_leader_participation: boot::PARALLEL_LEADER_PARTICIPATION,
    min_parallel_table_scan_size: boot::MIN_PARALLEL_TABLE_SCAN_SIZE,
    min_parallel_index_scan_size: boot::MIN_PARALLEL_INDEX_SCAN_SIZE,
    work_mem: boot::WORK_MEM,
    hash_mem_multiplier: boot::HASH_MEM_MULTIPLIER,
    enable_partitionwise_join: boot::ENABLE_PARTITIONWISE_JOIN,
    enable_partitionwise_aggregate: boot::ENABLE_PARTITIONWISE_AGGREGATE,
};

/// Read or write the variables behind the settings.
///
/// # Safety
/// Backend-local globals, read by the planner; only the backend's own thread touches them.
unsafe fn swap(new: Values) -> Values {
    // SAFETY: guaranteed by the caller.
    unsafe {
        let old = Values {
            seq_page_cost: pg_sys::seq_page_cost,
            random_page_cost: pg_sys::random_page_cost,
            cpu_tuple_cost: pg_sys::cpu_tuple_cost,
            cpu_index_tuple_cost: pg_sys::cpu_index_tuple_cost,
            cpu_operator_cost: pg_sys::cpu_operator_cost,
            parallel_tuple_cost: pg_sys::parallel_tuple_cost,
            parallel_setup_cost: pg_sys::parallel_setup_cost,
            recursive_worktable_factor: pg_sys::recursive_worktable_factor,
            effective_cache_size: pg_sys::effective_cache_size,
            max_parallel_workers_per_gather: pg_sys::max_parallel_workers_per_gather,
            parallel_leader_participation: pg_sys::parallel_leader_participation,
            min_parallel_table_scan_size: pg_sys::min_parallel_table_scan_size,
            min_parallel_index_scan_size: pg_sys::min_parallel_index_scan_size,
            work_mem: pg_sys::work_mem,
            hash_mem_multiplier: pg_sys::hash_mem_multiplier,
            enable_partitionwise_join: pg_sys::enable_partitionwise_join,
            enable_partitionwise_aggregate: pg_sys::enable_partitionwise_aggregate,
        };
        pg_sys::seq_page_cost = new.seq_page_cost;
        pg_sys::random_page_cost = new.random_page_cost;
        pg_sys::cpu_tuple_cost = new.cpu_tuple_cost;
        pg_sys::cpu_index_tuple_cost = new.cpu_index_tuple_cost;
        pg_sys::cpu_operator_cost = new.cpu_operator_cost;
        pg_sys::parallel_tuple_cost = new.parallel_tuple_cost;
        pg_sys::parallel_setup_cost = new.parallel_setup_cost;
        pg_sys::recursive_worktable_factor = new.recursive_worktable_factor;
        pg_sys::effective_cache_size = new.effective_cache_size;
        pg_sys::max_parallel_workers_per_gather = new.max_parallel_workers_per_gather;
        pg_sys::parallel_leader_participation = new.parallel_leader_participation;
        pg_sys::min_parallel_table_scan_size = new.min_parallel_table_scan_size;
        pg_sys::min_parallel_index_scan_size = new.min_parallel_index_scan_size;
        pg_sys::work_mem = new.work_mem;
        pg_sys::hash_mem_multiplier = new.hash_mem_multiplier;
        pg_sys::enable_partitionwise_join = new.enable_partitionwise_join;
        pg_sys::enable_partitionwise_aggregate = new.enable_partitionwise_aggregate;
        old
    }
}

impl FixedCosts {
    /// Switch to the defaults until the returned value is dropped.
    pub fn set() -> FixedCosts {
        // SAFETY: see swap().
        FixedCosts {
            saved: unsafe { swap(BOOT) },
        }
    }
}

impl Drop for FixedCosts {
    fn drop(&mut self) {
        // SAFETY: see swap().
        unsafe { swap(self.saved) };
    }
}
