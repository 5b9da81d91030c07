/* The devices, opened by engine.c on its setup thread in the target namespace: the TUN
 * (tun.c) and the UDP socket(s) (underlay.c), one fd of each per queue, stored in
 * e->queues[]. On failure they return -1 with a message in err; the fds opened so far stay in
 * e->queues[] for engine.c to close. */
#ifndef WEFT_DEVICES_H
#define WEFT_DEVICES_H

#include <stddef.h>

#include "datapath.h"

int tun_open(struct engine *e, char *err, size_t err_len);
int underlay_open(struct engine *e, char *err, size_t err_len);

#endif
