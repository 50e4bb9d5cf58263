/**
 * Config reload on SIGHUP: load the config file exactly as at start (same path, environment and
 * checks), refuse it with the lines a start would print, or hand it to the forwarder.
 */
import type { Config } from '../config/schema';
import { ERROR_CODES, ForwarderError } from '../errors';
import type { Logger } from '../observability/logger';

/** What the CLI prints for a config it cannot use; a refused reload logs the same text. */
export function configErrorText(file: string, err: ForwarderError): string {
  return `forwarder: ${file}: ${err.message}`;
}

/**
 * `run` one at a time: a request while one runs makes exactly one more run after it, however
 * many requests came meanwhile (the last one reads the newest file anyway).
 */
export function serialized(run: () => void | Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  let again = false;
  const loop = async (): Promise<void> => {
    try {
      do {
        again = false;
        await run();
      } while (again);
    } finally {
      running = undefined;
    }
  };
  return () => {
    if (running) {
      again = true;
      return running;
    }
    running = loop();
    return running;
  };
}

/** What a reload is applied to: the forwarder of a single process, or the supervisor. */
export interface Reloadable {
  readonly generation: number;
  /** Applies a loaded, valid config; throws (leaving the running one whole) if it cannot. */
  reload(next: Config): unknown;
  /** Counts a refused reload (mkf_config_reloads_total{result="refused"}). */
  countRefused(): void;
}

export class ConfigReloader {
  /** Reloads one at a time; see serialized(). */
  readonly request: () => Promise<void>;

  constructor(
    private readonly file: string,
    private readonly load: () => Config,
    private readonly target: Reloadable,
    private readonly log: Logger,
  ) {
    this.request = serialized(() => this.reloadOnce());
  }

  private reloadOnce(): void {
    let next: Config;
    try {
      next = this.load();
    } catch (err) {
      this.refused(err);
      return;
    }
    try {
      this.target.reload(next);
    } catch (err) {
      // Forwarder.reload builds the new generation before it swaps anything in, so a failure
      // leaves the running one whole.
      this.refused(err);
    }
  }

  private refused(err: unknown): void {
    const generation = this.target.generation;
    this.target.countRefused();
    if (err instanceof ForwarderError) {
      const text = configErrorText(this.file, err);
      this.log.error(
        {
          code: ERROR_CODES.configReloadRefused,
          configError: err.code,
          generation,
          lines: text.split('\n'),
        },
        `config reload refused, generation ${generation} keeps running: ${text}`,
      );
    } else {
      this.log.error(
        { code: ERROR_CODES.configReloadRefused, generation, err },
        `config reload failed, generation ${generation} keeps running: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }
}
