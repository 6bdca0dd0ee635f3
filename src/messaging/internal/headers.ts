/** Header names the adapters set. */
export const CDP_HEADERS = {
  id: 'cdp-id',
  key: 'cdp-key',
  topic: 'cdp-topic',
  attempt: 'cdp-attempt',
  deferrals: 'cdp-deferrals',
  dlqError: 'cdp-dlq-error',
  dlqGroup: 'cdp-dlq-group',
  dlqAttempts: 'cdp-dlq-attempts',
  dlqAt: 'cdp-dlq-at',
} as const;
