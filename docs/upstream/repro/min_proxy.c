/*
 * min_proxy.c: the smallest output plugin that Fluent Bit loads through its
 * Go proxy interface (`fluent-bit -e ./min_proxy.so`). It registers as a Go
 * proxy output named `min_proxy`, accepts every chunk (FLB_OK) and counts
 * the flushes. No Go runtime and no network: any crash with it is the host's.
 *
 *   cc -shared -fPIC -O2 -o min_proxy.so min_proxy.c
 */
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>

/* The first members of struct flb_plugin_proxy_def (flb_plugin_proxy.h). */
struct proxy_def {
    int type;           /* FLB_PROXY_OUTPUT_PLUGIN */
    int proxy;          /* FLB_PROXY_GOLANG */
    int flags;
    char *name;
    char *description;
};

static atomic_long flushes;

int FLBPluginRegister(struct proxy_def *def)
{
    def->type = 2;      /* FLB_PROXY_OUTPUT_PLUGIN */
    def->proxy = 11;    /* FLB_PROXY_GOLANG */
    def->flags = 0;
    def->name = "min_proxy";
    def->description = "minimal proxy output: accepts every chunk";
    return 0;
}

int FLBPluginInit(void *plugin)
{
    (void) plugin;
    return 1;           /* FLB_OK */
}

int FLBPluginFlushCtx(void *ctx, const void *data, size_t len, char *tag)
{
    (void) ctx; (void) data; (void) len; (void) tag;
    atomic_fetch_add(&flushes, 1);
    return 1;           /* FLB_OK */
}

int FLBPluginExitCtx(void *ctx)
{
    (void) ctx;
    fprintf(stderr, "[min_proxy] exit after %ld flushes\n",
            atomic_load(&flushes));
    return 0;
}
