/* outside (UDP -> TUN, outside.c): a queue's state for that direction (its buffers and GRO
 * flows) and its drain step. engine.c runs it on a forwarding thread; fuzz/fuzz_outside.c
 * drives it directly. */
#ifndef WEFT_OUTSIDE_H
#define WEFT_OUTSIDE_H

#include "datapath.h"

struct outside;
/* NULL when out of memory. */
struct outside *outside_new(struct queue *q);
void outside_free(struct outside *out);
/* Receives and delivers what the socket has ready, at most `budget` recvmmsg() batches
 * (0: until EAGAIN); writes everything received before it returns. Returns 1 if it stopped
 * because of the budget. */
int outside_drain(struct outside *out, int budget);

#endif
