import { describeServer } from '../support/servers.js';
import { postgresBed } from './backends.js';
import { describeIndexContract } from './index-contract.js';

describeServer('index tables on two PostgreSQL servers', 'CDP_SHARD_TEST_URLS', (urls) => {
  describeIndexContract('PostgreSQL shards', postgresBed(urls.split(',')));
});
