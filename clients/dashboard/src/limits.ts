/** Reconnect attempts before the dashboard's client gives up (seed 001's and seed 003's 10). */
export const MAX_RECONNECT_ATTEMPTS = 10;
