/** Where a run's messages are counted: the Kafka topic (benchmark) or an MQTT subscriber (ceiling). */

export interface SinkInfo {
  /** What a message's arrival time means, for the report. */
  readonly arrival: string;
  readonly [key: string]: unknown;
}

export interface Sink {
  readonly name: string;
  /** Resolves once the sink receives everything published from now on. */
  start(onPayload: (value: Buffer, arrivedAt: number) => void): Promise<void>;
  /** Hands over anything buffered; called when arrivals stall before the end. */
  flush(): Promise<void>;
  stop(): Promise<SinkInfo>;
}
