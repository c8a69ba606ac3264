// Turns many single calls into few batched ones. Calls made while a batch runs
// gather for the next: an idle worker adds no wait (a call runs on the next
// turn of the event loop), a busy one makes one database round trip for every
// message that arrived meanwhile. A batch that fails rejects each of its calls.
// The worker batches its delivery reads and attempt records with it, the API
// its incoming events (group commit).

export interface BatcherOptions<In, Out> {
  /** Runs one batch; resolves with one result per input, in the same order. */
  run: (inputs: In[]) => Promise<Out[]>;
  /**
   * The most a batch holds, counted by `sizeOf` (one per input by default). An
   * input is never split: one larger than this goes in a batch of its own.
   */
  maxSize: number;
  sizeOf?: (input: In) => number;
  /** Batches running at once. */
  concurrency: number;
}

interface Call<In, Out> {
  input: In;
  resolve: (output: Out) => void;
  reject: (error: unknown) => void;
}

export class Batcher<In, Out> {
  private waiting: Call<In, Out>[] = [];
  private running = 0;
  private scheduled = false;

  constructor(private readonly options: BatcherOptions<In, Out>) {}

  add(input: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      this.waiting.push({ input, resolve, reject });
      // Wait for the rest of this turn: messages the broker sent together batch together.
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.startBatches();
        });
      }
    });
  }

  private startBatches(): void {
    while (this.running < this.options.concurrency && this.waiting.length > 0) {
      const batch = this.waiting.splice(0, this.countFitting());
      this.running += 1;
      void this.runBatch(batch);
    }
  }

  /** How many of the waiting calls the next batch takes: at least one, then as many as fit. */
  private countFitting(): number {
    const { maxSize, sizeOf = () => 1 } = this.options;
    let size = 0;
    let count = 0;
    for (const call of this.waiting) {
      size += sizeOf(call.input);
      if (count > 0 && size > maxSize) break;
      count += 1;
    }
    return count;
  }

  private async runBatch(batch: Call<In, Out>[]): Promise<void> {
    try {
      const outputs = await this.options.run(batch.map((call) => call.input));
      batch.forEach((call, i) => call.resolve(outputs[i] as Out));
    } catch (error) {
      for (const call of batch) call.reject(error);
    } finally {
      this.running -= 1;
      this.startBatches();
    }
  }
}
