import { createParser } from 'eventsource-parser';

/** One server-sent event: its `event:` name, `id:` and joined `data:` lines. */
export interface SseMessage {
  event: string;
  id: string | null;
  data: string;
}

/**
 * Reads a text/event-stream body message by message. The parsing is eventsource-parser's: line
 * ends split across chunks (a CR in one, its LF in the next) are where hand-written readers break.
 */
export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseMessage> {
  const ready: SseMessage[] = [];
  const parser = createParser({ onEvent: (message) => ready.push({ event: message.event ?? 'message', id: message.id ?? null, data: message.data }) });
  const decoder = new TextDecoder();
  for await (const chunk of body) {
    parser.feed(decoder.decode(chunk, { stream: true }));
    yield* ready.splice(0);
  }
}
