// Package wasmtest runs wschan's browser build (GOOS=js GOARCH=wasm) in
// Debian's Chromium against a real `wschan serve` on loopback: the tests
// in dial_js_test.go are compiled to WebAssembly, loaded by a page with
// Go's wasm_exec.js, and driven by playwright-core (run.mjs), all from
// TestWasmInChromium (chromium_test.go). Tests only.
package wasmtest_test
