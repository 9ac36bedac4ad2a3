// A counting semaphore whose limit can change while it is in use: the SMTP pool's bound on sessions
// carrying a message at once, lowered while a relay pushes back.

/** A counting semaphore whose limit can change: at most `limit` sends (so sessions) at once, in arrival order. */
export class Slots {
  private used = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(public limit: number) {}

  take(): Promise<void> {
    if (this.used < this.limit && this.waiting.length === 0) {
      this.used++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  give(): void {
    this.used--;
    this.wake();
  }

  setLimit(limit: number): void {
    this.limit = limit;
    this.wake();
  }

  private wake(): void {
    while (this.used < this.limit && this.waiting.length > 0) {
      this.used++;
      (this.waiting.shift() as () => void)();
    }
  }
}
