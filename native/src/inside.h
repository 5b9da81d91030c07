/* inside (TUN -> UDP, inside.c): a queue's state for that direction (its buffers) and its drain
 * step. engine.c runs it on a forwarding thread; fuzz/fuzz_inside.c drives it directly. */
#ifndef WEFT_INSIDE_H
#define WEFT_INSIDE_H

#include "datapath.h"

struct inside;
/* NULL when out of memory. */
struct inside *inside_new(struct queue *q);
void inside_free(struct inside *in);
/* Reads and forwards what the TUN has ready, at most `budget` reads (0: until EAGAIN); sends
 * everything read before it returns. Returns 1 if it stopped because of the budget. */
int inside_drain(struct inside *in, int budget);

#endif
