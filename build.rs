//! Build script: links the plugin with `-z nodelete` and, with the `bindgen` feature,
//! regenerates the host-interface bindings from `include/flb_proxy.h`.
//!
//! The generated bindings are committed as `src/host/bindings.rs` so that a machine with only
//! Rust on it builds the crate; `cargo test --features bindgen` regenerates them into
//! `OUT_DIR` and a test fails if the committed copy is stale.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=include/flb_proxy.h");
    // Fluent Bit dlclose()s proxy plugins at shutdown and on hot reload. Rust's thread-local
    // destructors make unloading unsafe, so keep the image mapped for the process's life.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
    #[cfg(feature = "bindgen")]
    generate();
}

#[cfg(feature = "bindgen")]
fn generate() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    bindgen::Builder::default()
        .header("include/flb_proxy.h")
        .allowlist_type("flb_plugin_proxy_def|flbgo_output_plugin|flb_api|flb_plugin_proxy_context")
        .allowlist_var("FLB_.*")
        .default_macro_constant_type(bindgen::MacroTypeVariation::Signed)
        .rust_edition(bindgen::RustEdition::Edition2024)
        .layout_tests(true)
        .derive_default(false)
        .generate_comments(false)
        .generate()
        .expect("bindgen could not parse include/flb_proxy.h")
        .write_to_file(out.join("bindings.rs"))
        .expect("could not write the generated bindings");
}
