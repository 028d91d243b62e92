// A save worker in its own process, for the crash test: `node worker-child.mjs <json options>`.
// It opens the shared catalog, starts the worker, and prints "started" once it is running.
import { BullMqSaveQueue, createLazyContent } from '@lazy-content/core';

const { bullmq, ...options } = JSON.parse(process.argv[2]);
const queue = bullmq ? new BullMqSaveQueue(bullmq) : undefined;
const lc = createLazyContent({ ...options, logger: false, save: { ...options.save, queue } });
await lc.start();
process.stdout.write('started\n');
process.on('SIGTERM', () => void lc.close().then(() => process.exit(0)));
