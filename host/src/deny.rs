//! Deny components: a dependency that does not inherit a configuration set is kept from
//! the host interfaces of that set by construction.
//!
//! As in Spin (`crates/capabilities/src/deny.rs`, `apply_deny_adapter`, at spin commit
//! 94a8fc8a), a dependency or middleware that imports an interface of a set it does not
//! inherit is wrapped, before it enters the trigger's composition, in a composition of its
//! own: a deny component exporting exactly those interfaces is instantiated and plugged
//! into exactly those imports, and the wrapper exports what the dependency exports. The
//! wrapped dependency no longer imports the denied interfaces at all, so nothing later in
//! the composition can route them to the host with the parent's configuration. (Routing
//! them to separately named host imports does not work: wac-graph merges every import of
//! one interface into one, so such an import reached the parent's grants whenever the
//! parent imported the same interface.)
//!
//! Spin ships one prebuilt adapter that exports fixed interface versions. chatgate instead
//! generates the deny component when the app loads, from the dependency's own import
//! types: it matches whatever versions the dependency imports, its exports have the
//! dependency's import types by construction, and no binary lives in the repository. The
//! generation (decoding the dependency's types, encoding a component of a few hundred
//! bytes) happens once per load; per request it adds one core instance with one 64 KiB
//! memory and no start function to each restricted dependency's instance. Only sets the
//! primary component holds something in are denied this way (`compose::Holds`): for the
//! others the host's own answers are already these refusals, so the shipped chain needs
//! one deny component (for `retrieval`) rather than one per dependency and middleware.
//!
//! Calls that have a natural refusal answer it exactly as Spin's adapter does
//! (`crates/capabilities/deny-adapter/src/lib.rs`): a variable is undefined, a store is
//! access-denied, an outbound request fails with `internal-error`, a socket is
//! access-denied, the environment, arguments and preopens are empty. Every other function
//! of a denied interface traps; most cannot be reached, as they need a resource that only
//! a refused call would have returned.

use anyhow::{Context as _, bail};
use std::collections::BTreeSet;
use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions};
use wasm_encoder::{
    CodeSection, ConstExpr, DataSection, ExportKind, ExportSection, Function, FunctionSection,
    Instruction, MemArg, MemorySection, MemoryType, Module, TypeSection, ValType,
};
use wit_parser::abi::{AbiVariant, WasmType};
use wit_parser::{
    Int, InterfaceId, LiftLowerAbi, ManglingAndAbi, Resolve, SizeAlign, Type, TypeDefKind,
    WasmExport, WasmExportKind, World, WorldItem, WorldKey,
};

/// How a denied function answers, keyed by interface (without version) and function.
/// Each mirrors Spin's deny adapter, `crates/capabilities/deny-adapter/src/lib.rs`.
fn refusal(interface: &str, function: &str) -> Option<Refusal> {
    let not_permitted = |what: &str| format!("{what:?} is not permitted");
    Some(match (interface, function) {
        // `Error::Undefined(name)`: deny-adapter/src/lib.rs:567.
        ("spin:variables/variables", "get") => Refusal::Err("undefined", Payload::EchoParam),
        // `Error::Io(format_deny_error("wasi:config/store"))`: lib.rs:576.
        ("wasi:config/store", "get" | "get-all") => {
            Refusal::Err("io", Payload::Text(not_permitted("wasi:config/store")))
        }
        // `Error::AccessDenied`: lib.rs:111 (`spin:key-value`) and lib.rs:1724 (`wasi:keyvalue`).
        ("spin:key-value/key-value", "[static]store.open") | ("wasi:keyvalue/store", "open") => {
            Refusal::Err("access-denied", Payload::None)
        }
        // `ErrorCode::InternalError(Some(format_deny_error(...)))`: lib.rs:95 (`wasi:http/client`)
        // and lib.rs:62 (`outgoing-handler`); `format_deny_error` is lib.rs:55.
        ("wasi:http/client", "send") => Refusal::Err(
            "internal-error",
            Payload::SomeText(not_permitted("wasi:http/client")),
        ),
        ("wasi:http/outgoing-handler", "handle") => Refusal::Err(
            "internal-error",
            Payload::SomeText(not_permitted("wasi:http/outgoing-handler")),
        ),
        // `Vec::new()` / `None`: lib.rs:851 and 1306 (environment), 868 and 1333 (preopens).
        ("wasi:cli/environment", "get-environment" | "get-arguments")
        | ("wasi:filesystem/preopens", "get-directories") => Refusal::EmptyList,
        ("wasi:cli/environment", "initial-cwd" | "get-initial-cwd") => Refusal::NoneOption,
        // `ErrorCode::AccessDenied`: lib.rs:1020 (udp), 1246 (tcp), 1275 and 1355
        // (ip-name-lookup). WASI 0.3 creates
        // sockets with static methods of `wasi:sockets/types`, which Spin's adapter does
        // not cover; chatgate refuses them the same way.
        ("wasi:sockets/tcp-create-socket", "create-tcp-socket")
        | ("wasi:sockets/udp-create-socket", "create-udp-socket")
        | ("wasi:sockets/ip-name-lookup", "resolve-addresses")
        | ("wasi:sockets/types", "[static]tcp-socket.create" | "[static]udp-socket.create") => {
            Refusal::Err("access-denied", Payload::None)
        }
        _ => return None,
    })
}

/// A denied function's answer.
enum Refusal {
    /// `err` of a `result` whose error is a variant or enum, with that case.
    Err(&'static str, Payload),
    EmptyList,
    NoneOption,
}

/// The payload of an error case.
enum Payload {
    None,
    Text(String),
    SomeText(String),
    /// The function's first parameter, a string (the variable's name).
    EchoParam,
}

/// Wraps `dependency` so that its imports named in `denied` are satisfied by a generated
/// deny component; returns the bytes unchanged when `denied` is empty.
pub fn restrict(dependency: &[u8], denied: &BTreeSet<String>) -> anyhow::Result<Vec<u8>> {
    if denied.is_empty() {
        return Ok(dependency.to_vec());
    }
    let deny = deny_component(dependency, denied)?;

    // As Spin's `apply_deny_adapter`: plug the deny component's exports into the
    // dependency's imports of the same names, and re-export all of the dependency's exports.
    let mut graph = CompositionGraph::new();
    let dependency_pkg = Package::from_bytes("dependency", None, dependency, graph.types_mut())?;
    let dependency_pkg = graph.register_package(dependency_pkg)?;
    let deny_pkg = Package::from_bytes("chatgate-deny", None, deny, graph.types_mut())?;
    let deny_pkg = graph.register_package(deny_pkg)?;
    let dependency_instance = graph.instantiate(dependency_pkg);
    let deny_instance = graph.instantiate(deny_pkg);
    for name in denied {
        let export = graph.alias_instance_export(deny_instance, name)?;
        graph
            .set_instantiation_argument(dependency_instance, name, export)
            .with_context(|| format!("plugging the deny component into `{name}`"))?;
    }
    let exports: Vec<String> = graph.types()[graph[dependency_pkg].ty()]
        .exports
        .keys()
        .cloned()
        .collect();
    for name in exports {
        let export = graph.alias_instance_export(dependency_instance, &name)?;
        graph.export(export, &name)?;
    }
    Ok(graph.encode(EncodeOptions::default())?)
}

/// A component that exports the interfaces `denied` names, with the types the dependency
/// imports them with, and answers their functions with refusals.
pub fn deny_component(dependency: &[u8], denied: &BTreeSet<String>) -> anyhow::Result<Vec<u8>> {
    let (mut resolve, dependency_world) =
        match wit_parser::decoding::decode(dependency).context("reading the component's types")? {
            wit_parser::decoding::DecodedWasm::Component(resolve, world) => (resolve, world),
            wit_parser::decoding::DecodedWasm::WitPackage(..) => {
                bail!("expected a component, found a WIT package")
            }
        };
    let mut exports: Vec<(WorldKey, InterfaceId)> = Vec::new();
    for (key, item) in &resolve.worlds[dependency_world].imports {
        let name = resolve.name_world_key(key);
        if denied.contains(&name) {
            let WorldItem::Interface { id, .. } = item else {
                bail!("`{name}` is not an interface import");
            };
            exports.push((key.clone(), *id));
        }
    }
    if let Some(missing) = denied.iter().find(|name| {
        !exports
            .iter()
            .any(|(key, _)| &resolve.name_world_key(key) == *name)
    }) {
        bail!("the component does not import `{missing}`");
    }

    // The interfaces whose types the denied ones use are imported, as the dependency does.
    let mut imports: Vec<InterfaceId> = Vec::new();
    let mut pending: Vec<InterfaceId> = exports.iter().map(|(_, id)| *id).collect();
    while let Some(id) = pending.pop() {
        for dep in resolve.interface_direct_deps(id).collect::<Vec<_>>() {
            if exports.iter().any(|(_, e)| *e == dep) || imports.contains(&dep) {
                continue;
            }
            imports.push(dep);
            pending.push(dep);
        }
    }
    // In the dependency's own import order, which has every interface after those it uses.
    let imports: Vec<InterfaceId> = resolve.worlds[dependency_world]
        .imports
        .values()
        .filter_map(|item| match item {
            WorldItem::Interface { id, .. } if imports.contains(id) => Some(*id),
            _ => None,
        })
        .collect();
    let package = resolve.worlds[dependency_world].package;
    let world = resolve.worlds.alloc(World {
        name: "chatgate-deny".into(),
        imports: imports
            .iter()
            .map(|id| (WorldKey::Interface(*id), interface_item(*id)))
            .collect(),
        exports: exports
            .iter()
            .map(|(key, id)| (key.clone(), interface_item(*id)))
            .collect(),
        package,
        docs: Default::default(),
        stability: Default::default(),
        includes: Vec::new(),
        span: Default::default(),
    });

    let module = core_module(&resolve, world, false)?;
    encode(module, &resolve, world).context("encoding the deny component")
}

/// The component of `world` whose core module is `module`.
fn encode(
    mut module: Vec<u8>,
    resolve: &Resolve,
    world: wit_parser::WorldId,
) -> anyhow::Result<Vec<u8>> {
    wit_component::embed_component_metadata(
        &mut module,
        resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )?;
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&module)?
        .encode()
}

fn interface_item(id: InterfaceId) -> WorldItem {
    WorldItem::Interface {
        id,
        stability: Default::default(),
        external_id: None,
        docs: Default::default(),
        span: Default::default(),
    }
}

/// Where the static return areas and strings begin; address 8 is an empty list's pointer.
const DATA_START: u32 = 16;
/// Every function answers from a return area in this module's one page.
const PAGE: u32 = 65536;

/// A component of `world` (in the WIT `source`) that imports the functions of its imported
/// interfaces, never calling them, and whose exports trap unless a refusal is known for
/// them: stand-ins for real components in composition tests.
pub fn stub_component(source: &str, world: &str) -> anyhow::Result<Vec<u8>> {
    let mut resolve = Resolve::default();
    let package = resolve.push_source("stub.wit", source)?;
    let world = resolve.select_world(&[package], Some(world))?;
    let module = core_module(&resolve, world, true)?;
    encode(module, &resolve, world)
}

/// The core module behind a deny world: every exported function either writes its
/// refusal into a static return area and returns its address, or traps. With
/// `import_functions`, it also imports every function of the world's imported interfaces.
fn core_module(
    resolve: &Resolve,
    world: wit_parser::WorldId,
    import_functions: bool,
) -> anyhow::Result<Vec<u8>> {
    let mangling = ManglingAndAbi::Legacy(LiftLowerAbi::Sync);
    let mut sizes = SizeAlign::default();
    sizes.fill(resolve);

    let mut types = TypeSection::new();
    let mut functions = FunctionSection::new();
    let mut exports = ExportSection::new();
    let mut code = CodeSection::new();
    let mut data: Vec<u8> = Vec::new();
    let mut imports = wasm_encoder::ImportSection::new();
    let mut function_count = 0u32;
    if import_functions {
        for (key, item) in &resolve.worlds[world].imports {
            let WorldItem::Interface { id, .. } = item else {
                continue;
            };
            for func in resolve.interfaces[*id].functions.values() {
                let signature = resolve.wasm_signature(AbiVariant::GuestImport, func);
                let (module, name) = resolve.wasm_import_name(
                    mangling,
                    wit_parser::WasmImport::Func {
                        interface: Some(key),
                        func,
                    },
                );
                types.ty().function(
                    signature.params.iter().map(val_type),
                    signature.results.iter().map(val_type),
                );
                imports.import(
                    &module,
                    &name,
                    wasm_encoder::EntityType::Function(function_count),
                );
                function_count += 1;
            }
        }
    }
    let imported = function_count;
    let mut add_function = |types: &mut TypeSection,
                            params: Vec<ValType>,
                            results: Vec<ValType>,
                            body: &Function,
                            export: &str| {
        let index = function_count;
        function_count += 1;
        types.ty().function(params, results);
        // One type per function, imported or defined: its type index is its function index.
        functions.function(index);
        code.function(body);
        exports.export(export, ExportKind::Func, index);
    };

    for (key, item) in &resolve.worlds[world].exports {
        let WorldItem::Interface { id, .. } = item else {
            continue;
        };
        let interface = resolve.name_world_key(key);
        let unversioned = interface
            .split('@')
            .next()
            .unwrap_or(&interface)
            .to_string();
        for func in resolve.interfaces[*id].functions.values() {
            let signature = resolve.wasm_signature(AbiVariant::GuestExport, func);
            let name = resolve.wasm_export_name(
                mangling,
                WasmExport::Func {
                    interface: Some(key),
                    func,
                    kind: WasmExportKind::Normal,
                },
            );
            let mut body = Function::new(Vec::<(u32, ValType)>::new());
            let answer = match (refusal(&unversioned, &func.name), &func.result) {
                (Some(Refusal::Err(_, Payload::EchoParam)), _)
                    if func.params.first().map(|p| p.ty) != Some(Type::String)
                        || signature.params.len() < 2 =>
                {
                    bail!(
                        "`{interface}#{}`: its first parameter is not a string",
                        func.name
                    )
                }
                (Some(refusal), Some(result)) if signature.retptr => {
                    Some(ReturnArea::new(resolve, &sizes, &mut data).write(&refusal, result)?)
                }
                _ => None,
            };
            match answer {
                Some((address, echoes)) => {
                    for (offset, local) in echoes {
                        body.instruction(&Instruction::I32Const(address as i32));
                        body.instruction(&Instruction::LocalGet(local));
                        body.instruction(&Instruction::I32Store(MemArg {
                            offset: u64::from(offset),
                            align: 2,
                            memory_index: 0,
                        }));
                    }
                    body.instruction(&Instruction::I32Const(address as i32));
                }
                None => {
                    body.instruction(&Instruction::Unreachable);
                }
            }
            body.instruction(&Instruction::End);
            add_function(
                &mut types,
                signature.params.iter().map(val_type).collect(),
                signature.results.iter().map(val_type).collect(),
                &body,
                &name,
            );
        }
        // Resources of a denied interface are never created; their destructors do nothing.
        for ty in resolve.interfaces[*id].types.values() {
            if matches!(resolve.types[*ty].kind, TypeDefKind::Resource) {
                let name = resolve.wasm_export_name(
                    mangling,
                    WasmExport::ResourceDtor {
                        interface: key,
                        resource: *ty,
                    },
                );
                let mut body = Function::new(Vec::<(u32, ValType)>::new());
                body.instruction(&Instruction::End);
                add_function(&mut types, vec![ValType::I32], vec![], &body, &name);
            }
        }
    }

    // `cabi_realloc` hands out one scratch region after the static data, growing the
    // memory as needed: arguments are never read, so each may overwrite the last.
    let scratch = (DATA_START + data.len() as u32).next_multiple_of(8);
    let mut realloc = Function::new(Vec::<(u32, ValType)>::new());
    for instruction in [
        Instruction::LocalGet(3),
        Instruction::I32Const(scratch as i32),
        Instruction::I32Add,
        Instruction::MemorySize(0),
        Instruction::I32Const(16),
        Instruction::I32Shl,
        Instruction::I32GtU,
        Instruction::If(wasm_encoder::BlockType::Empty),
        Instruction::LocalGet(3),
        Instruction::I32Const(scratch as i32 + PAGE as i32 - 1),
        Instruction::I32Add,
        Instruction::I32Const(16),
        Instruction::I32ShrU,
        Instruction::MemorySize(0),
        Instruction::I32Sub,
        Instruction::MemoryGrow(0),
        Instruction::I32Const(-1),
        Instruction::I32Eq,
        Instruction::If(wasm_encoder::BlockType::Empty),
        Instruction::Unreachable,
        Instruction::End,
        Instruction::End,
        Instruction::I32Const(scratch as i32),
        Instruction::End,
    ] {
        realloc.instruction(&instruction);
    }
    let realloc_name = resolve.wasm_export_name(mangling, WasmExport::Realloc);
    add_function(
        &mut types,
        vec![ValType::I32; 4],
        vec![ValType::I32],
        &realloc,
        &realloc_name,
    );
    if DATA_START as usize + data.len() > PAGE as usize {
        bail!("the deny component's refusals do not fit in one page");
    }

    let mut memory = MemorySection::new();
    memory.memory(MemoryType {
        minimum: 1,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    exports.export(
        &resolve.wasm_export_name(mangling, WasmExport::Memory),
        ExportKind::Memory,
        0,
    );
    let mut segments = DataSection::new();
    segments.active(0, &ConstExpr::i32_const(DATA_START as i32), data);

    let mut module = Module::new();
    module.section(&types);
    if imported > 0 {
        module.section(&imports);
    }
    module
        .section(&functions)
        .section(&memory)
        .section(&exports)
        .section(&code)
        .section(&segments);
    Ok(module.finish())
}

fn val_type(ty: &WasmType) -> ValType {
    match ty {
        WasmType::I32 | WasmType::Pointer | WasmType::Length => ValType::I32,
        WasmType::I64 | WasmType::PointerOrI64 => ValType::I64,
        WasmType::F32 => ValType::F32,
        WasmType::F64 => ValType::F64,
    }
}

/// Lays out one function's answer in the static data, as the canonical ABI lifts it.
struct ReturnArea<'a> {
    resolve: &'a Resolve,
    sizes: &'a SizeAlign,
    data: &'a mut Vec<u8>,
}

impl<'a> ReturnArea<'a> {
    fn new(resolve: &'a Resolve, sizes: &'a SizeAlign, data: &'a mut Vec<u8>) -> Self {
        ReturnArea {
            resolve,
            sizes,
            data,
        }
    }

    /// The type behind any aliases.
    fn kind(&self, ty: &Type) -> Option<&'a TypeDefKind> {
        let mut ty = *ty;
        loop {
            let Type::Id(id) = ty else {
                return None;
            };
            match &self.resolve.types[id].kind {
                TypeDefKind::Type(inner) => ty = *inner,
                kind => return Some(kind),
            }
        }
    }

    /// Reserves `size` zeroed bytes aligned to `align`; returns their offset in `data`.
    fn reserve(&mut self, size: usize, align: usize) -> usize {
        let start = (DATA_START as usize + self.data.len()).next_multiple_of(align.max(1))
            - DATA_START as usize;
        self.data.resize(start + size, 0);
        start
    }

    fn put(&mut self, at: usize, bytes: &[u8]) {
        self.data[at..at + bytes.len()].copy_from_slice(bytes);
    }

    fn put_discriminant(&mut self, at: usize, tag: Int, value: usize) {
        let bytes = (value as u64).to_le_bytes();
        let width = match tag {
            Int::U8 => 1,
            Int::U16 => 2,
            Int::U32 => 4,
            Int::U64 => 8,
        };
        self.put(at, &bytes[..width]);
    }

    /// A string constant, pointed to from `at`.
    fn put_string(&mut self, at: usize, text: &str) {
        let start = self.reserve(text.len(), 1);
        self.put(start, text.as_bytes());
        let address = DATA_START + start as u32;
        self.put(at, &address.to_le_bytes());
        self.put(at + 4, &(text.len() as u32).to_le_bytes());
    }

    /// Writes `refusal` as a value of `result`; returns the return area's address and
    /// the (offset, parameter local) pairs the function stores before returning.
    fn write(mut self, refusal: &Refusal, result: &Type) -> anyhow::Result<(u32, Vec<(u32, u32)>)> {
        let size = self.sizes.size(result).size_wasm32();
        let align = self.sizes.align(result).align_wasm32();
        let area = self.reserve(size, align);
        let address = DATA_START + area as u32;
        let mut echoes = Vec::new();
        match (refusal, self.kind(result)) {
            (Refusal::EmptyList, Some(TypeDefKind::List(_))) => {
                // An empty list still needs an aligned pointer.
                self.put(area, &8u32.to_le_bytes());
            }
            (Refusal::NoneOption, Some(TypeDefKind::Option(_))) => {}
            (Refusal::Err(case, payload), Some(TypeDefKind::Result(result))) => {
                self.put_discriminant(area, Int::U8, 1);
                let error = result
                    .err
                    .context("the function's result has no error type")?;
                let at = area
                    + self
                        .sizes
                        .payload_offset(Int::U8, [result.ok.as_ref(), Some(&error)])
                        .size_wasm32();
                let (tag, index, case_type, cases): (Int, usize, Option<Type>, Vec<Option<Type>>) =
                    match self.kind(&error) {
                        Some(TypeDefKind::Variant(variant)) => {
                            let index = variant
                                .cases
                                .iter()
                                .position(|c| c.name == *case)
                                .with_context(|| format!("no error case `{case}`"))?;
                            (
                                variant.tag(),
                                index,
                                variant.cases[index].ty,
                                variant.cases.iter().map(|c| c.ty).collect(),
                            )
                        }
                        Some(TypeDefKind::Enum(enumeration)) => {
                            let index = enumeration
                                .cases
                                .iter()
                                .position(|c| c.name == *case)
                                .with_context(|| format!("no error case `{case}`"))?;
                            (enumeration.tag(), index, None, Vec::new())
                        }
                        _ => bail!("the function's error is not a variant or an enum"),
                    };
                self.put_discriminant(at, tag, index);
                let payload_at = at
                    + self
                        .sizes
                        .payload_offset(tag, cases.iter().map(Option::as_ref))
                        .size_wasm32();
                match (payload, case_type) {
                    (Payload::None, None) => {}
                    (Payload::Text(text), Some(Type::String)) => self.put_string(payload_at, text),
                    (Payload::SomeText(text), Some(ty))
                        if matches!(self.kind(&ty), Some(TypeDefKind::Option(Type::String))) =>
                    {
                        self.put_discriminant(payload_at, Int::U8, 1);
                        self.put_string(payload_at + 4, text);
                    }
                    (Payload::EchoParam, Some(Type::String)) => {
                        let offset = (payload_at - area) as u32;
                        echoes.push((offset, 0));
                        echoes.push((offset + 4, 1));
                    }
                    _ => bail!("error case `{case}` does not have the expected payload"),
                }
            }
            _ => bail!("the function's result does not have the expected shape"),
        }
        Ok((address, echoes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_cover_every_natural_refusal_of_spins_adapter() {
        assert!(refusal("spin:variables/variables", "get").is_some());
        assert!(refusal("spin:key-value/key-value", "[static]store.open").is_some());
        assert!(refusal("wasi:keyvalue/store", "open").is_some());
        assert!(refusal("wasi:http/client", "send").is_some());
        assert!(refusal("wasi:cli/environment", "get-environment").is_some());
        assert!(refusal("wasi:filesystem/preopens", "get-directories").is_some());
        // Functions on resources no refused call hands out trap.
        assert!(refusal("spin:key-value/key-value", "[method]store.get").is_none());
        assert!(refusal("wasi:keyvalue/atomics", "increment").is_none());
    }
}
