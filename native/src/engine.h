/* The engine's lifecycle, for addon.c: open (devices, then each queue's forwarding thread(s)),
 * read counters, close. The forwarding engine: one TUN device (inside) and UDP socket(s)
 * (outside), served by one or more queues: a TUN queue fd, a socket of a SO_REUSEPORT group
 * and their thread(s) each. Options and the engine state are the data path's (datapath.h).
 * See ../README.md for the threads, buffers and flow. */
#ifndef WEFT_ENGINE_H
#define WEFT_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "datapath.h"

/* Counter names in counter order (counterNames()). */
extern const char *const weft_counter_names[C_COUNT];

/* On error returns NULL and writes a message naming the device, address or call and what to
 * do into err. */
struct engine *engine_open(const struct engine_options *opt, char *err, size_t err_len);
void engine_close(struct engine *e);
/* A counter summed over the queues (relaxed loads; each queue's value only grows). */
uint64_t engine_counter(struct engine *e, enum weft_counter id);

#endif
