/** A Piscina worker that answers with its thread id, after an optional delay, or dies. */
import { threadId } from 'node:worker_threads';

export default async function whoami(task: { delayMs?: number; die?: boolean }): Promise<number> {
  // A thread that dies as a crashed native call would end it: Piscina replaces it.
  if (task.die) process.exit(1);
  if (task.delayMs) await new Promise((r) => setTimeout(r, task.delayMs));
  return threadId;
}
