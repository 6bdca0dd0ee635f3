/** Operations on the service (`/`): ListBuckets. */
import type { Authed } from './context.js';
import { sendXml } from './context.js';
import { isoDate, XMLNS } from './xml.js';

export async function listBuckets(c: Authed) {
  const items = (await c.env.buckets.list()).map(
    (b) =>
      `<Bucket><Name>${b.name}</Name><CreationDate>${isoDate(b.created)}</CreationDate></Bucket>`,
  );
  sendXml(
    c,
    200,
    `<ListAllMyBucketsResult xmlns="${XMLNS}"><Owner><ID>cdp</ID><DisplayName>cdp</DisplayName></Owner><Buckets>${items.join('')}</Buckets></ListAllMyBucketsResult>`,
  );
}
