//! The engine every app component runs on, and the pooling allocator's sizes.
//!
//! Each size is a share per composed instance times the most instances served at once, so
//! that the pool never runs out before admission does; the reason for each share, and
//! when it was measured, is kept beside it because changing the chain changes them.

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Fiber stacks the pool holds per instance: each concurrently running guest task takes
/// one, and a request through the middleware chain held about two at once when issue 9
/// was measured (a pool of 1,000 stacks ran out at ~500 requests).
const STACKS_PER_INSTANCE: u32 = 4;
/// Core instances per composed instance: the shipped chain (five components, their
/// dependencies, the adapters and deny components between them) needed more than 20
/// when measured with a deny component per dependency (a pool of 20 per instance ran out
/// before admission did); not re-measured since.
const CORE_INSTANCES_PER_INSTANCE: u32 = 64;
/// Linear memories per composed instance (the shipped chain has 7, as wasmtime reports when
/// this share is set lower; 11 with a deny component per dependency). Each reserves over
/// 4 GiB of address space, so this share bounds the pool: 1,000 instances with 16
/// memories reserve about 65 TiB of the 128 TiB a process has.
const MEMORIES_PER_INSTANCE: u32 = 16;
/// Tables per composed instance (cheap: a table slot reserves its elements only).
const TABLES_PER_INSTANCE: u32 = 64;

/// Memory one component instance may grow to; the pooling allocator reserves this per memory.
pub const MAX_MEMORY_BYTES: usize = 1 << 30;

/// Builds the engine: async component model (WASIp3), the pooling allocator for cheap
/// per-request instantiation, and epoch-based preemption so a spinning guest cannot
/// monopolise a host thread.
///
/// With `compile_cache`, compiled code is kept in that directory and reused when the
/// same composed component is loaded again. `max_instances` sizes the pool: the
/// most requests served at once.
pub fn engine(
    compile_cache: Option<&std::path::Path>,
    max_instances: u32,
) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    if let Some(dir) = compile_cache {
        let mut cache = wasmtime::CacheConfig::new();
        cache.with_directory(dir);
        config.cache(Some(wasmtime::Cache::new(cache)?));
    }
    let profiler = std::env::var("CHATGATE_PROFILER").unwrap_or_default();
    configure_guest_code(&mut config, &profiler);
    // `CHATGATE_PROFILER=callgrind`: instructions counted by valgrind, independent of the
    // machine's load (how the middlewares' per-request costs were compared). Valgrind
    // cannot map the pool's address space, so instances are allocated on demand.
    if profiler == "callgrind" {
        return Engine::new(&config);
    }
    // Every admitted request gets its instance's worth of each pooled resource. The
    // per-component maxima equal the per-instance shares, so wasmtime refuses to compile
    // a composition that needs more.
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(max_instances);
    pool.total_core_instances(max_instances.saturating_mul(CORE_INSTANCES_PER_INSTANCE));
    pool.total_memories(max_instances.saturating_mul(MEMORIES_PER_INSTANCE));
    pool.total_tables(max_instances.saturating_mul(TABLES_PER_INSTANCE));
    pool.max_memories_per_component(MEMORIES_PER_INSTANCE);
    pool.max_tables_per_component(TABLES_PER_INSTANCE);
    pool.max_core_instances_per_component(CORE_INSTANCES_PER_INSTANCE);
    pool.max_memory_size(MAX_MEMORY_BYTES);
    pool.total_stacks(max_instances.saturating_mul(STACKS_PER_INSTANCE));
    // How a retired instance's memory is reset (keep-resident sizes, the pagemap scan,
    // decommit batching, warm slots) stays wasmtime's default: none of the settings tried
    // gained beyond the runs' spread, and 48.0.10's pagemap scan leaves dirty pages that
    // are swapped out unreset (read in its source, not exercised; docs/measurements/
    // benchmarks.md, "what retiring an instance costs").
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

/// What decides the guests' compiled code: the async component model (WASIp3), epoch
/// checks for preemption, and, for `profiler` (`CHATGATE_PROFILER`), how memories are
/// reserved and whether a perf map names the code. Shared with
/// `examples/guest_instructions.rs`, which counts a component's own path the same way.
///
/// `perfmap` writes /tmp/perf-<pid>.map so that `perf report` names the guests' compiled
/// functions (how the per-stage costs in the gateway benchmark were found). `callgrind`
/// also writes it (callgrind reports the guests' addresses unnamed) and reserves each
/// memory small: with wasmtime's 4 GiB reservation per memory, the gateway under valgrind
/// answered the `export_cost` scenario's requests 503 (tried 2026-12-07; presumably the
/// reservations failing, the gateway's log was not read).
/// A small reservation makes the guests' bounds checks explicit, which costs far more
/// than it seems: `waf`'s own path (`components/waf/examples/profile.rs`, `CASE=chain`)
/// counted 352.3 k instructions per request with it against 244.5 k as compiled in
/// production (`bench/instructions/guest-path waf`, 2026-12-07; 122.5 k natively). So
/// guest counts taken under `callgrind` overstate the guests' production cost.
pub fn configure_guest_code(config: &mut Config, profiler: &str) {
    config.wasm_component_model(true);
    config.wasm_component_model_async(true);
    config.epoch_interruption(true);
    if profiler == "perfmap" || profiler == "callgrind" {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if profiler == "callgrind" {
        config.memory_reservation(64 << 20);
        config.memory_guard_size(64 << 10);
    }
}
