/** What a benchmark client sends first, as the official client does: Connect, then one `messages:list` subscription (query 0). */
export function subscribeFrames(chatId: string, { sessionId = crypto.randomUUID(), clientTs = 0 }: { sessionId?: string; clientTs?: number } = {}): string[] {
  return [
    JSON.stringify({ type: "Connect", sessionId, connectionCount: 0, lastCloseReason: null, clientTs }),
    JSON.stringify({
      type: "ModifyQuerySet",
      baseVersion: 0,
      newVersion: 1,
      modifications: [{ type: "Add", queryId: 0, udfPath: "messages:list", args: [{ chatId }] }],
    }),
  ];
}
