// Types for the `telltale` ES module (and the `window.telltale` global of the script tag).

/** A JSON value the collector stores as an event property or a user trait. */
export type Value = string | number | boolean | null | Value[] | { [key: string]: Value }
export type Properties = Record<string, Value>

export interface Options {
  /** The app's public id, `app_…` (required). */
  appId: string
  /** Collector base URL or first-party proxy path ("/stats" → POST /stats/v1/events). Default: the script's origin (script tag) or the page's origin (module). */
  endpoint?: string
  /**
   * page_viewed on load and on every SPA navigation (once the router has set the title);
   * page_left when the page is left (`engaged_ms`: how long it was visible, `scroll_depth`:
   * the deepest point reached, in %; not an interaction: it never prevents a bounce);
   * outbound_link_clicked and file_downloaded (`url`, `extension`). Default true.
   */
  autoEvents?: boolean
  /** form_submitted on every form submit (field names only, never values). Default true. */
  autoHook?: boolean
  /** Console lines prefixed [telltale] for events, sends, answers and warnings. Default false. */
  debug?: boolean
  /** Send as soon as this many events are queued. Default 10. */
  batchSize?: number
  /** Otherwise send this many milliseconds after the first queued event. Default 1000. */
  flushInterval?: number
  /** Track nothing when navigator.doNotTrack is "1" or Global Privacy Control is on. Default false. */
  respectDoNotTrack?: boolean
  /** Extensions (lower case) whose links are file downloads, as a list or "pdf,zip"; "" for none. Default: common documents, archives, installers and media. */
  downloadExtensions?: string[] | string | false
}

/** Configures the SDK and starts sending. Calling it again updates the options. */
export function init(options: Options): void
/** Tracks an event; name it in snake_case after what the user did, e.g. `plan_upgraded`. */
export function trackEvent(name: string, properties?: Properties): void
/** Links the anonymous id to your user id (login, signup) and optionally sets traits. */
export function setUserId(id: string | number, traits?: Properties): void
/** Merges traits into the current user; while anonymous they are sent with the next setUserId. */
export function identify(traits: Properties): void
/** Forgets the user (logout) and starts a new anonymous id. */
export function reset(): void
/** Sends everything queued now; resolves true when the queue is empty, false when a send failed (the events stay queued and are retried). */
export function flush(): Promise<boolean>
/** The visitor's anonymous id (a UUID kept in localStorage). */
export function getAnonymousId(): string
/** Stops tracking in this browser (remembered) and drops queued events. */
export function optOut(): void
/** Undoes optOut(). */
export function optIn(): void

export interface Telltale {
  init: typeof init
  trackEvent: typeof trackEvent
  setUserId: typeof setUserId
  identify: typeof identify
  reset: typeof reset
  flush: typeof flush
  getAnonymousId: typeof getAnonymousId
  optOut: typeof optOut
  optIn: typeof optIn
}

/** The script tag's global: methods, or `telltale('trackEvent', name, properties)`. */
export interface TelltaleGlobal extends Telltale {
  <M extends keyof Telltale>(method: M, ...args: Parameters<Telltale[M]>): ReturnType<Telltale[M]>
}

declare const telltale: Telltale
export default telltale

declare global {
  interface Window {
    telltale: TelltaleGlobal
  }
}
