// Wasm files imported by the Worker entry arrive as compiled modules (wrangler's CompiledWasm rule).
declare module '*.wasm' {
  const module: WebAssembly.Module;
  export default module;
}
