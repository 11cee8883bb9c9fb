/**
 * The most signal IDs a RunSuspended carries in `consumed_signal_ids`: a worker sends the most
 * recent ones when its run consumed more, and the control plane refuses a longer list. 1,000 IDs
 * are about 38 KB on the wire and one insert statement in the suspension's transaction.
 */
export const MAX_CONSUMED_SIGNAL_IDS = 1000;
