/*
 * FLBPluginFlushCtx, in C: a flush that lets Fluent Bit's worker run other flushes while its
 * requests are in flight.
 *
 * Fluent Bit runs every flush in a coroutine of the worker's event loop. Its C outputs yield that
 * coroutine while they wait for the network, so one worker has many flushes in flight. A Go
 * function cannot yield it (a Go call must return before anything else runs on its thread's
 * stack), so here the flush is split: Go starts it on a goroutine and returns; this code then
 * registers a pipe in the worker's event loop and yields the coroutine, as Fluent Bit's own I/O
 * does; the goroutine, once the chunk's last answer is in, stores the FLB code and writes a byte to
 * the pipe; the event loop calls kgo_wake, which resumes the coroutine; and the flush returns the
 * code to Fluent Bit. Fluent Bit still learns a chunk's fate only from its own flush: nothing is
 * acknowledged before Kinesis accepted it.
 *
 * It needs functions the fluent-bit binary exports (Fluent Bit's CMake builds it with
 * ENABLE_EXPORTS, as the official packages are) and two of its structs: struct flb_coro, whose
 * layout is checked at run time, and the head of struct mk_event, unchanged since 2015. Where any
 * of it is missing (the project's C test host, Windows), or the instance asks for order across
 * chunks (partition_key), the flush runs in Go while the coroutine waits, as it always did.
 */
#include "fluentbit.h"
#include "_cgo_export.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32

/* A DLL exports only what is marked so (Go marks its own exports). */
__declspec(dllexport) int FLBPluginFlushCtx(void *ctx, void *data, int length, char *tag)
{
    return (int) kgoFlush(ctx, data, length, tag);
}

int kgo_async_flush_available(void)
{
    return 0;
}

void kgo_flush_done(int fd)
{
    (void) fd;
}

#else

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

/* Fluent Bit's event types (flb_engine_macros.h) and monkey's mask (mk_event.h). */
#define KGO_EV_CUSTOM 4 /* FLB_ENGINE_EV_CUSTOM: the loop calls event->handler(event) */
#define KGO_EVENT_READ 1

/* The head of monkey's struct mk_event, as in every Fluent Bit since 2015. Later members (list
 * heads, the priority) follow it; they must start zeroed, which the padding of struct kgo_wait
 * gives them. */
struct mk_event_head {
    int fd;
    int type;
    uint32_t mask;
    uint8_t status;
    void *data;
    int (*handler)(void *data);
};

/* One flush that waits. The event comes first: the loop passes its address to kgo_wake. */
struct kgo_wait {
    union {
        struct mk_event_head head;
        char room[256]; /* more than Fluent Bit's struct mk_event takes (72 bytes in 5.1) */
    } event;
    void *evl;    /* the worker's event loop */
    void **coro;  /* the flush's struct flb_coro */
    int fds[2];   /* the pipe: Go writes fds[1] once, kgo_wake reads fds[0] */
    int rc;       /* the FLB code, stored by Go before it writes */
    volatile int woken;
};

static struct {
    int resolved, ok;
    void *(*coro_get)(void);
    void (*coro_set)(void *);
    void *(*co_active)(void);
    void (*co_switch)(void *);
    void *(*evl_get)(void);
    int (*event_add)(void *, int, int, uint32_t, void *);
    int (*event_del)(void *, void *);
    int callee; /* index of callee in struct flb_coro seen as pointers; caller is the one before */
} host;

static void *symbol(const char *name)
{
    return dlsym(RTLD_DEFAULT, name);
}

static void resolve(void)
{
    if (host.resolved) {
        return;
    }
    host.coro_get = (void *(*)(void)) symbol("flb_coro_get");
    host.coro_set = (void (*)(void *)) symbol("flb_coro_set");
    host.co_active = (void *(*)(void)) symbol("co_active");
    host.co_switch = (void (*)(void *)) symbol("co_switch");
    host.evl_get = (void *(*)(void)) symbol("flb_engine_evl_get");
    host.event_add = (int (*)(void *, int, int, uint32_t, void *)) symbol("mk_event_add");
    host.event_del = (int (*)(void *, void *)) symbol("mk_event_del");
    host.ok = host.coro_get && host.coro_set && host.co_active && host.co_switch && host.evl_get &&
              host.event_add && host.event_del;
    host.callee = -1;
    host.resolved = 1;
}

int kgo_async_flush_available(void)
{
    resolve();
    return host.ok;
}

void kgo_flush_done(int fd)
{
    char b = 1;

    while (write(fd, &b, 1) < 0 && errno == EINTR) {
    }
}

/*
 * struct flb_coro is { [unsigned int valgrind_stack_id,] cothread_t caller; cothread_t callee;
 * void *data; }. Inside the coroutine, callee is the running context (co_active()); caller is the
 * context that resumed it. Find callee among the first pointers rather than trust one layout.
 */
static int coro_layout(void **coro)
{
    void *self = host.co_active();
    int i;

    for (i = 1; i <= 2; i++) {
        if (coro[i] == self && coro[i - 1] != NULL) {
            return i;
        }
    }
    return -1;
}

/* The loop's handler: the goroutine wrote the byte, so the flush's code is stored. Resume the
 * coroutine as flb_coro_resume does. The coroutine frees w before it yields again. */
static int kgo_wake(void *data)
{
    struct kgo_wait *w = data;
    void **coro = w->coro;
    char b;

    if (read(w->fds[0], &b, 1) != 1) {
        return 0; /* not yet: spurious wake-up */
    }
    host.event_del(w->evl, &w->event);
    w->woken = 1;
    host.coro_set(coro);
    coro[host.callee - 1] = host.co_active();
    host.co_switch(coro[host.callee]);
    return 0;
}

static void wait_free(struct kgo_wait *w)
{
    if (w->fds[0] >= 0) {
        close(w->fds[0]);
    }
    if (w->fds[1] >= 0) {
        close(w->fds[1]);
    }
    free(w);
}

/* wait_new prepares a flush's wait, or returns NULL, with the reason in *why, when this flush
 * cannot yield; *lasting says whether later flushes cannot either. */
static struct kgo_wait *wait_new(const char **why, int *lasting)
{
    struct kgo_wait *w;
    void **coro;
    void *evl;

    if (!kgo_async_flush_available()) {
        *why = "the fluent-bit binary does not export the functions it needs";
        *lasting = 1;
        return NULL;
    }
    if ((coro = host.coro_get()) == NULL || (evl = host.evl_get()) == NULL) {
        *why = "the flush runs outside a coroutine or an event loop";
        *lasting = 1;
        return NULL;
    }
    if (host.callee < 0) {
        host.callee = coro_layout(coro);
    }
    if (host.callee < 0 || coro[host.callee] != host.co_active()) {
        *why = "Fluent Bit's coroutine is not laid out as expected";
        *lasting = 1;
        return NULL;
    }
    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        *why = "out of memory";
        return NULL;
    }
    w->fds[0] = w->fds[1] = -1;
    if (pipe(w->fds) != 0 || fcntl(w->fds[0], F_SETFD, FD_CLOEXEC) != 0 ||
        fcntl(w->fds[1], F_SETFD, FD_CLOEXEC) != 0 || fcntl(w->fds[0], F_SETFL, O_NONBLOCK) != 0) {
        *why = "no pipe (out of file descriptors?)";
        wait_free(w);
        return NULL;
    }
    w->evl = evl;
    w->coro = coro;
    w->event.head.handler = kgo_wake;
    if (host.event_add(evl, w->fds[0], KGO_EV_CUSTOM, KGO_EVENT_READ, &w->event) != 0) {
        *why = "the event loop refused the pipe";
        wait_free(w);
        return NULL;
    }
    /* mk_event_add fills the head: a different layout would show here. */
    if (w->event.head.fd != w->fds[0] || w->event.head.type != KGO_EV_CUSTOM ||
        w->event.head.handler != kgo_wake) {
        *why = "Fluent Bit's event is not laid out as expected";
        *lasting = 1;
        host.event_del(evl, &w->event);
        wait_free(w);
        return NULL;
    }
    return w;
}

int FLBPluginFlushCtx(void *ctx, void *data, int length, char *tag)
{
    struct kgo_wait *w;
    const char *why = NULL;
    int lasting = 0;
    int rc;

    if (!kgoFlushYields(ctx)) {
        return (int) kgoFlush(ctx, data, length, tag);
    }
    if ((w = wait_new(&why, &lasting)) == NULL) {
        kgoFlushHeld(ctx, (char *) why, lasting);
        return (int) kgoFlush(ctx, data, length, tag);
    }
    if (!kgoFlushStart(ctx, data, length, tag, &w->rc, w->fds[1])) {
        host.event_del(w->evl, &w->event);
        wait_free(w);
        return (int) kgoFlush(ctx, data, length, tag);
    }
    /* Yield to the event loop until kgo_wake resumes this coroutine. */
    while (!w->woken) {
        host.co_switch(w->coro[host.callee - 1]);
    }
    rc = w->rc;
    wait_free(w);
    return rc;
}

#endif
