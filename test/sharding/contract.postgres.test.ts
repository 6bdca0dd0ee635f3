import { describeServer } from '../support/servers.js';
import { postgresBed } from './backends.js';
import { describeShardContract } from './router-contract.js';

describeServer('sharding contract on two PostgreSQL servers', 'CDP_SHARD_TEST_URLS', (urls) => {
  const list = urls.split(',');
  if (list.length < 2)
    throw new Error('CDP_SHARD_TEST_URLS must list at least two PostgreSQL servers');
  describeShardContract('PostgreSQL shards', postgresBed(list));
});
