/*
 * The part of Fluent Bit's "Go proxy" output-plugin interface that this plugin touches,
 * written from the host's public layout (flb_plugin_proxy.h, go.h, flb_api.h) for
 * x86_64 and aarch64 LP64. build.rs runs bindgen over this file (feature `bindgen`);
 * the result is committed as src/bindings.rs.
 *
 * Only the members listed here are ever read or written by the plugin:
 *  - flb_plugin_proxy_def: the first 32 bytes, the same in every host version
 *    (5.0 appends event_type, 5.1.1 config_map; the plugin never writes them).
 *  - flb_api: only output_get_property, the one member Fluent Bit 1.9 has.
 *  - flbgo_output_plugin: the four leading members the Go SDK also reads.
 */
#ifndef FLB_DATADOG_PROXY_H
#define FLB_DATADOG_PROXY_H

#include <stddef.h>

/* Return codes of Init and Flush (flb_macros.h). */
#define FLB_ERROR 0
#define FLB_OK 1
#define FLB_RETRY 2

/* flb_plugin_proxy_def.type and .proxy values. */
#define FLB_PROXY_OUTPUT_PLUGIN 2
#define FLB_PROXY_GOLANG 11

/* Written by the plugin in FLBPluginRegister. */
struct flb_plugin_proxy_def {
    int type;
    int proxy;
    int flags;
    char *name;
    char *description;
};

/* Opaque host objects. */
struct flb_output_instance;
struct flb_plugin_proxy;

/* The host's api table; the plugin reads only the first member. */
struct flb_api {
    const char *(*output_get_property)(const char *key, struct flb_output_instance *ins);
};

/* Per instance, calloc'd by the host; remote_context is passed back to FlushCtx/ExitCtx. */
struct flb_plugin_proxy_context {
    void *remote_context;
    struct flb_plugin_proxy *proxy;
};

/* The argument of FLBPluginInit: one per .so, its o_ins/context rewritten before each Init. */
struct flbgo_output_plugin {
    void *name;
    struct flb_api *api;
    struct flb_output_instance *o_ins;
    struct flb_plugin_proxy_context *context;
};

#endif
