/*
 * rawq.h: raw bridges to SysV message queues, for programs that know only
 * msgsnd() and msgrcv() (docs/design.md, Raw bridges; docs/legacy.md).
 *
 * `sysv-in KEY MTYPE CHANNEL`: a receiver thread per line blocks in
 * msgrcv(MTYPE) and hands what it takes to the loop in batches (a
 * struct loop_async); the loop publishes each mtext, as it is, on CHANNEL
 * through route_publish() with the bridge as the message's origin.
 *
 * `sysv-out PATTERN KEY MTYPE`: a subscription of its own kind (struct sub
 * with its own sub_ops, added with route_sub_add, so it is interest like a
 * client's, across bridges too) that msgsnd()s each matching payload with
 * MTYPE, always IPC_NOWAIT; what does not fit waits in a bounded backlog,
 * retried on a timer for at most the line's wait.
 *
 * Nothing is ever truncated: a message too large for where it goes is
 * dropped, counted and logged (at most one line per bridge every 10 s).
 */
#ifndef IPCBUS_RAWQ_H
#define IPCBUS_RAWQ_H

struct broker;

/* Read the system's limits, open (or create) every raw bridge's queue,
 * start the receivers and subscribe the senders.  0, or a negative code
 * after logging why (what was opened is undone by rawq_fini). */
int rawq_init(struct broker *b);

/* TERM/INT: the receivers stop taking messages (what is in the queues
 * stays there); what they had taken is published.  Senders go on until
 * rawq_fini. */
void rawq_stop(struct broker *b);

/* Stop everything, try the senders' backlogs once more, unsubscribe,
 * remove the queues configured `remove`, free.  Safe after a failed
 * rawq_init and when there are no raw bridges. */
void rawq_fini(struct broker *b);

/* The USR1 status: one line per raw bridge. */
void rawq_status(struct broker *b);

#endif
