/**
 * Branch ids: `cdp.<coordinator>.<transaction>.<participant>`, with the transaction id as 32 hex
 * digits and the two names of at most 12 characters from [a-z0-9-]: at most 62 ASCII bytes, so
 * that the id fits MariaDB's 64-byte XA gtrid as well as PostgreSQL's 200-byte gid. The dot never
 * occurs inside a part, so ids of different coordinators, transactions or participants never
 * collide, and the prefix `cdp.<coordinator>.` selects one coordinator's branches.
 */
export function coordinatorPrefix(coordinator: string): string {
  return `cdp.${coordinator}.`;
}

export function branchId(coordinator: string, transaction: string, participant: string): string {
  return `${coordinatorPrefix(coordinator)}${transaction}.${participant}`;
}

/** The transaction and participant of one of this coordinator's branch ids, or undefined. */
export function parseBranchId(
  coordinator: string,
  gid: string,
): { transaction: string; participant: string } | undefined {
  const prefix = coordinatorPrefix(coordinator);
  if (!gid.startsWith(prefix)) return undefined;
  const parts = gid.slice(prefix.length).split('.');
  if (parts.length !== 2 || !/^[0-9a-f]{32}$/.test(parts[0]!) || parts[1]!.length === 0) {
    return undefined;
  }
  return { transaction: parts[0]!, participant: parts[1]! };
}

/** A new transaction id: a UUIDv7 without its dashes (time-ordered, 32 hex digits). */
export function transactionId(uuid: string): string {
  return uuid.replaceAll('-', '');
}

/** Ids reach SQL text (PREPARE TRANSACTION takes no parameter): only these characters pass. */
export function assertBranchId(gid: string): void {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(gid)) {
    throw new RangeError(
      `branch id ${JSON.stringify(gid)} must be 1 to 64 characters from A-Z, a-z, 0-9, '.', '_' and '-'`,
    );
  }
}
