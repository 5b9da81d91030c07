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
/* Starts the threads of an engine opened paused (a no-op once they run). 0, or -1 and err
 * (then the engine only closes). */
int engine_start(struct engine *e, char *err, size_t err_len);
/* The device and socket fds of a detached engine, per queue (-1: none). */
struct engine_fds {
  int queues;
  int tun[WEFT_MAX_QUEUES];
  int udp[WEFT_MAX_QUEUES];
  int udp6[WEFT_MAX_QUEUES];
};
/* Stops the threads (each finishes the batch in hand: nothing read is dropped) and frees the
 * engine like engine_close, but leaves the TUN queues and sockets open and gives them to the
 * caller, for the next engine to adopt (engine_options.adopt). */
void engine_detach(struct engine *e, struct engine_fds *out);
/* A counter summed over the queues (relaxed loads; each queue's value only grows). */
uint64_t engine_counter(struct engine *e, enum weft_counter id);

#endif
