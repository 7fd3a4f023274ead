import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { dynamoTables, parseConfig } from '@fleetmq/edge';
import { FleetmqAwsStack, type FleetmqAwsStackProps } from '../aws/stack.js';

const certificateArn = 'arn:aws:acm:eu-west-1:123456789012:certificate/11111111-2222-3333-4444-555555555555';
const props: FleetmqAwsStackProps = {
  image: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/fleetmq:1.2.3',
  certificate: { arn: certificateArn },
  drainGracePeriodMs: 30_000,
  edge: { minTasks: 2, maxTasks: 10, connectionsPerTask: 10_000 },
};
// one synth for the whole file: it takes a few seconds
const stack = new FleetmqAwsStack(new App(), 'FleetMQ', props);
const template = Template.fromStack(stack);

type Resource = { Properties: Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any -- CloudFormation JSON
const resources = (type: string) => Object.values(template.findResources(type)) as Resource[];
const attrs = (tg: Resource) => Object.fromEntries((tg.Properties.TargetGroupAttributes as { Key: string; Value: string }[]).map((a) => [a.Key, a.Value]));
const edgeContainer = () => resources('AWS::ECS::TaskDefinition').flatMap((t) => t.Properties.ContainerDefinitions).find((c: { Name: string }) => c.Name === 'edge');

describe('AWS stack: load balancer', () => {
  it('listens on TCP 1883, TLS 8883 and TLS 443 with the certificate', () => {
    const listeners = resources('AWS::ElasticLoadBalancingV2::Listener').map((l) => [l.Properties.Port, l.Properties.Protocol, l.Properties.Certificates?.[0]?.CertificateArn]);
    expect(listeners.sort((a, b) => a[0] - b[0])).toEqual([
      [443, 'TLS', certificateArn],
      [1883, 'TCP', undefined],
      [8883, 'TLS', certificateArn],
    ]);
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', { Type: 'network', Scheme: 'internet-facing' });
  });

  it('sends PROXY v2 to the MQTT targets, keeps connections through a drain, and checks /readyz on the ops port', () => {
    const groups = resources('AWS::ElasticLoadBalancingV2::TargetGroup');
    expect(groups).toHaveLength(2);
    const mqtt = groups.find((g) => g.Properties.Port === 1883)!;
    const ws = groups.find((g) => g.Properties.Port === 8083)!;
    expect(attrs(mqtt)['proxy_protocol_v2.enabled']).toBe('true');
    // the edge's WebSocket listener reads it too (TLS ends at the NLB)
    expect(attrs(ws)['proxy_protocol_v2.enabled']).toBe('true');
    for (const g of [mqtt, ws]) {
      expect(g.Properties).toMatchObject({ Protocol: 'TCP', TargetType: 'ip', HealthCheckProtocol: 'HTTP', HealthCheckPort: '8081', HealthCheckPath: '/readyz' });
      const a = attrs(g);
      expect(Number(a['deregistration_delay.timeout_seconds'])).toBeGreaterThanOrEqual(30);
      expect(a['deregistration_delay.connection_termination.enabled']).toBe('false');
    }
    // 8883 is TLS terminated at the NLB into the same MQTT targets (with PROXY v2); 443 goes to WebSocket
    const byPort = Object.fromEntries(resources('AWS::ElasticLoadBalancingV2::Listener').map((l) => [l.Properties.Port, l.Properties.DefaultActions[0].TargetGroupArn.Ref]));
    expect(byPort[1883]).toBe(byPort[8883]);
    expect(byPort[443]).not.toBe(byPort[1883]);
  });
});

describe('AWS stack: edge service', () => {
  it('runs the edge on Fargate with a stop timeout above the drain, rolling with 100% healthy', () => {
    const c = edgeContainer();
    expect(c.StopTimeout).toBeGreaterThan(30);
    expect(c.StopTimeout).toBeLessThanOrEqual(120);
    expect(c.PortMappings.map((p: { ContainerPort: number }) => p.ContainerPort)).toEqual([1883, 8083, 8081]);
    template.hasResourceProperties('AWS::ECS::Service', {
      LaunchType: 'FARGATE',
      // autoscaling owns the count: a DesiredCount would reset it on every deploy
      DesiredCount: Match.absent(),
      EnableExecuteCommand: true,
      LoadBalancers: Match.arrayWith([Match.objectLike({ ContainerName: 'edge', ContainerPort: 1883 }), Match.objectLike({ ContainerName: 'edge', ContainerPort: 8083 })]),
      DeploymentConfiguration: Match.objectLike({ MinimumHealthyPercent: 100, MaximumPercent: 200, DeploymentCircuitBreaker: { Enable: true, Rollback: true } }),
    });
  });

  it('gives the edge a config its parser accepts: PROXY protocol on 1883, NATS by Cloud Map name, Redis and region by env', () => {
    const c = edgeContainer();
    const env = Object.fromEntries((c.Environment as { Name: string; Value: unknown }[]).map((e) => [e.Name, e.Value]));
    const raw = parse(env.FLEETMQ_CONFIG_YAML as string) as Record<string, unknown>;
    const config = parseConfig({ ...raw, cluster: { ...(raw.cluster as object), redis: { url: 'rediss://redis.example:6379' } } });
    expect(config.listeners.map((l) => [l.type, l.port, l.proxyProtocol])).toEqual([
      ['tcp', 1883, true],
      ['ws', 8083, true],
    ]);
    expect(config.cluster.nats!.servers).toEqual(['nats://nats.fleetmq.internal:4222']);
    expect(config.ops).toMatchObject({ host: '0.0.0.0', port: 8081 });
    expect(config.auth.passwordFile).toBe('/tmp/passwd');
    expect(config.drain.gracePeriod).toBe(30_000);
    expect(env.FLEETMQ_CONFIG).toBe('/tmp/fleetmq.yaml');
    expect(JSON.stringify(env.FLEETMQ_CLUSTER__REDIS__URL)).toMatch(/rediss:\/\/.*PrimaryEndPoint\.Address.*PrimaryEndPoint\.Port/);
    expect(env.FLEETMQ_DYNAMODB__REGION).toEqual({ Ref: 'AWS::Region' });
    const secrets = (c.Secrets as { Name: string }[]).map((s) => s.Name).sort();
    expect(secrets).toEqual(['FLEETMQ_ADMIN_TOKEN', 'FLEETMQ_OPS__ADMIN_TOKEN', 'FLEETMQ_PASSWD']);
    const from = (name: string) => JSON.stringify((c.Secrets as { Name: string; ValueFrom: unknown }[]).find((s) => s.Name === name)!.ValueFrom);
    expect(from('FLEETMQ_ADMIN_TOKEN')).toBe(from('FLEETMQ_OPS__ADMIN_TOKEN'));
    // the wrapper writes both files and then execs node, so SIGTERM reaches the node
    expect(c.Command[0]).toMatch(/> \/tmp\/fleetmq\.yaml .*> \/tmp\/passwd && exec node services\/edge\/dist\/cli\.js start$/);
  });

  it('scales between the bounds on CPU and on connections per task', () => {
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', { MinCapacity: 2, MaxCapacity: 10, ScalableDimension: 'ecs:service:DesiredCount' });
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      PolicyType: 'TargetTrackingScaling',
      TargetTrackingScalingPolicyConfiguration: Match.objectLike({ PredefinedMetricSpecification: { PredefinedMetricType: 'ECSServiceAverageCPUUtilization' } }),
    });
    const alarms = resources('AWS::CloudWatch::Alarm').filter((a) => JSON.stringify(a.Properties.Metrics ?? []).includes('ActiveFlowCount'));
    expect(alarms.map((a) => [a.Properties.ComparisonOperator, a.Properties.Threshold]).sort()).toEqual([
      ['GreaterThanOrEqualToThreshold', 10_000],
      ['LessThanOrEqualToThreshold', 5_000],
    ]);
  });

  it('refuses a drain longer than Fargate waits before SIGKILL', () => {
    expect(() => new FleetmqAwsStack(new App(), 'TooLong', { ...props, drainGracePeriodMs: 115_000 })).toThrow(/Fargate/);
  });
});

describe('AWS stack: backends', () => {
  it('creates the tables the edge uses, on demand, with TTL, point-in-time recovery and retained on delete', () => {
    const expected = dynamoTables({ region: 'eu-west-1', tablePrefix: 'fleetmq-', createTables: false });
    expect(stack.edgeConfig.dynamodb!.tablePrefix).toBe('fleetmq-');
    const tables = template.findResources('AWS::DynamoDB::Table');
    expect(Object.keys(tables)).toHaveLength(3);
    for (const def of Object.values(expected)) {
      const table = Object.values(tables).find((t) => t.Properties.TableName === def.tableName);
      if (table === undefined) throw new Error(`no table ${def.tableName}`);
      expect(table.Properties).toMatchObject({
        BillingMode: 'PAY_PER_REQUEST',
        TimeToLiveSpecification: { AttributeName: def.ttlAttribute, Enabled: true },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        DeletionProtectionEnabled: true,
      });
      expect(table.DeletionPolicy).toBe('Retain');
      const keys = [{ AttributeName: def.partitionKey, KeyType: 'HASH' }, ...(def.sortKey ? [{ AttributeName: def.sortKey, KeyType: 'RANGE' }] : [])];
      expect(table.Properties.KeySchema).toEqual(keys);
      const types = Object.fromEntries((table.Properties.AttributeDefinitions as { AttributeName: string; AttributeType: string }[]).map((a) => [a.AttributeName, a.AttributeType]));
      expect(types[def.partitionKey]).toBe('S');
      if (def.sortKey) expect(types[def.sortKey]).toBe(def.sortKeyType ?? 'S');
    }
  });

  it('runs Redis on ElastiCache with encryption and failover, reachable from the edge only', () => {
    template.hasResourceProperties('AWS::ElastiCache::ReplicationGroup', { Engine: 'redis', TransitEncryptionEnabled: true, AtRestEncryptionEnabled: true, AutomaticFailoverEnabled: true, NumCacheClusters: 2 });
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', { FromPort: 6379, ToPort: 6379, IpProtocol: 'tcp', SourceSecurityGroupId: Match.anyValue() });
  });

  it('runs NATS on ECS, registered in Cloud Map as nats.fleetmq.internal', () => {
    template.hasResourceProperties('AWS::ServiceDiscovery::PrivateDnsNamespace', { Name: 'fleetmq.internal' });
    template.hasResourceProperties('AWS::ServiceDiscovery::Service', { Name: 'nats', DnsConfig: Match.objectLike({ DnsRecords: [{ Type: 'A', TTL: 10 }] }) });
    const nats = resources('AWS::ECS::TaskDefinition').flatMap((t) => t.Properties.ContainerDefinitions).find((c: { Name: string }) => c.Name === 'nats');
    expect(nats.Command).toEqual(expect.arrayContaining(['--routes', 'nats://nats.fleetmq.internal:6222']));
    template.hasResourceProperties('AWS::ECS::Service', { DesiredCount: 3, ServiceRegistries: Match.anyValue() });
  });

  it('registers the edge tasks in Cloud Map too, for Prometheus to find their ops ports', () => {
    const names = resources('AWS::ServiceDiscovery::Service').map((s) => s.Properties.Name).sort();
    expect(names).toEqual(['edge', 'nats']);
    const fromVpc = (port: number) => Match.objectLike({ FromPort: port, ToPort: port, CidrIp: { 'Fn::GetAtt': [Match.anyValue(), 'CidrBlock'] } });
    template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      GroupDescription: 'FleetMQ edge nodes',
      SecurityGroupIngress: Match.arrayWith([fromVpc(1883), fromVpc(8083), fromVpc(8081)]),
    });
  });
});
