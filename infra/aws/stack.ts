/**
 * FleetMQ on AWS (CDK): edge nodes on ECS Fargate behind a Network Load Balancer (MQTT 1883,
 * MQTT over TLS 8883, MQTT over secure WebSocket 443), NATS on ECS found through Cloud Map,
 * ElastiCache Redis, and the DynamoDB tables the edge uses. `npm run synth:aws` (main.ts).
 */
import {
  Aws,
  CfnOutput,
  Duration,
  RemovalPolicy,
  SecretValue,
  Stack,
  type StackProps,
  aws_applicationautoscaling as appscaling,
  aws_certificatemanager as acm,
  aws_cloudwatch as cloudwatch,
  aws_dynamodb as dynamodb,
  aws_ec2 as ec2,
  aws_ecs as ecs,
  aws_elasticache as elasticache,
  aws_elasticloadbalancingv2 as elbv2,
  aws_logs as logs,
  aws_secretsmanager as secretsmanager,
  aws_servicediscovery as servicediscovery,
} from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { LIVE_PATH, MQTT_PORTS, OPS_PORT, READY_PATH, drainSeconds, edgeTables, renderEdgeConfig, type RenderedEdgeConfig } from '../src/edge-config.js';

/** Fargate lets a container take at most this long between SIGTERM and SIGKILL. */
const FARGATE_MAX_STOP_SECONDS = 120;
const NATS_PORTS = { client: 4222, cluster: 6222, monitor: 8222 } as const;
const REDIS_PORT = 6379;

export interface FleetmqAwsStackProps extends StackProps {
  /** The edge image (the repository's Dockerfile, pushed to ECR). */
  readonly image: string;
  /** The certificate of the TLS (8883) and secure WebSocket (443) listeners: an ACM ARN, or a domain to request one for (DNS validation). */
  readonly certificate: { readonly arn: string } | { readonly domainName: string };
  /** DynamoDB table names start with this; default `fleetmq-`. */
  readonly tablePrefix?: string;
  /** drain.gracePeriod of the edge, ms; default the edge's (25 s). */
  readonly drainGracePeriodMs?: number;
  readonly edge?: {
    readonly cpu?: number;
    readonly memoryMiB?: number;
    readonly minTasks?: number;
    readonly maxTasks?: number;
    /** Target average CPU, percent; default 60. */
    readonly cpuTargetPercent?: number;
    /** Target MQTT connections per task (load balancer flows / healthy tasks); default 20000. */
    readonly connectionsPerTask?: number;
  };
  readonly nats?: { readonly tasks?: number; readonly image?: string };
  readonly redis?: { readonly nodeType?: string; readonly replicas?: number };
  readonly maxAzs?: number;
  /** More edge config (mqtt, limits, auth, log), merged over what the stack writes. */
  readonly edgeConfig?: Readonly<Record<string, unknown>>;
}

export class FleetmqAwsStack extends Stack {
  readonly edgeConfig: RenderedEdgeConfig['config'];
  readonly tables: readonly dynamodb.Table[];
  readonly loadBalancer: elbv2.NetworkLoadBalancer;
  readonly edgeService: ecs.FargateService;

  constructor(scope: Construct, id: string, props: FleetmqAwsStackProps) {
    super(scope, id, props);
    const edgeProps = props.edge ?? {};
    const minTasks = edgeProps.minTasks ?? 3;
    const maxTasks = edgeProps.maxTasks ?? 12;
    if (!(minTasks >= 1 && maxTasks >= minTasks)) throw new Error(`edge tasks: min ${minTasks} and max ${maxTasks} need 1 <= min <= max`);

    // aws-cdk-lib's classes declare optional properties that exactOptionalPropertyTypes reads
    // strictly against their own interfaces: the constructs are used through the interfaces
    const vpc = new ec2.Vpc(this, 'Vpc', { maxAzs: props.maxAzs ?? 2, natGateways: 1 }) as ec2.IVpc;
    // DynamoDB traffic stays off the NAT gateway
    vpc.addGatewayEndpoint('DynamoDbEndpoint', { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB });
    const namespace = new servicediscovery.PrivateDnsNamespace(this, 'Namespace', { name: 'fleetmq.internal', vpc });
    const cluster = new ecs.Cluster(this, 'Cluster', { vpc, containerInsightsV2: ecs.ContainerInsights.ENABLED }) as ecs.ICluster;

    // --- Redis (ElastiCache): client-ID ownership and the node registry ------------------------
    const redisSg = new ec2.SecurityGroup(this, 'RedisSecurityGroup', { vpc, description: 'FleetMQ Redis', allowAllOutbound: false });
    const redisSubnets = new elasticache.CfnSubnetGroup(this, 'RedisSubnets', {
      description: 'FleetMQ Redis',
      subnetIds: vpc.privateSubnets.map((s) => s.subnetId),
    });
    const redisReplicas = props.redis?.replicas ?? 2;
    const redis = new elasticache.CfnReplicationGroup(this, 'Redis', {
      replicationGroupDescription: 'FleetMQ client-ID ownership and node registry',
      engine: 'redis',
      engineVersion: '7.1',
      cacheNodeType: props.redis?.nodeType ?? 'cache.t4g.small',
      numCacheClusters: redisReplicas,
      automaticFailoverEnabled: redisReplicas > 1,
      multiAzEnabled: redisReplicas > 1,
      transitEncryptionEnabled: true,
      atRestEncryptionEnabled: true,
      port: REDIS_PORT,
      cacheSubnetGroupName: redisSubnets.ref,
      securityGroupIds: [redisSg.securityGroupId],
    });
    const redisUrl = `rediss://${redis.attrPrimaryEndPointAddress}:${redis.attrPrimaryEndPointPort}`;

    // --- NATS on ECS, found as nats.fleetmq.internal ------------------------------------------
    const natsSg = new ec2.SecurityGroup(this, 'NatsSecurityGroup', { vpc, description: 'FleetMQ NATS' });
    natsSg.connections.allowInternally(ec2.Port.tcp(NATS_PORTS.cluster), 'NATS cluster routes');
    const natsHost = `nats.${namespace.namespaceName}`;
    const natsTask = new ecs.FargateTaskDefinition(this, 'NatsTask', { cpu: 512, memoryLimitMiB: 1024 });
    natsTask.addContainer('nats', {
      image: ecs.ContainerImage.fromRegistry(props.nats?.image ?? 'nats:2.10-alpine'),
      // every server routes to the service name; the NATS gossip finds the rest and ignores itself
      command: ['--cluster_name', 'fleetmq', '--cluster', `nats://0.0.0.0:${NATS_PORTS.cluster}`, '--routes', `nats://${natsHost}:${NATS_PORTS.cluster}`, '-m', String(NATS_PORTS.monitor)],
      portMappings: [{ containerPort: NATS_PORTS.client }, { containerPort: NATS_PORTS.cluster }, { containerPort: NATS_PORTS.monitor }],
      healthCheck: { command: ['CMD-SHELL', `wget -q -O /dev/null http://127.0.0.1:${NATS_PORTS.monitor}/healthz || exit 1`], interval: Duration.seconds(10), startPeriod: Duration.seconds(10) },
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'nats', logRetention: logs.RetentionDays.ONE_MONTH }),
    });
    new ecs.FargateService(this, 'Nats', {
      cluster,
      taskDefinition: natsTask,
      desiredCount: props.nats?.tasks ?? 3,
      securityGroups: [natsSg],
      minHealthyPercent: 66,
      maxHealthyPercent: 134,
      cloudMapOptions: { name: 'nats', cloudMapNamespace: namespace, dnsRecordType: servicediscovery.DnsRecordType.A, dnsTtl: Duration.seconds(10) },
    });

    // --- DynamoDB: the edge's own table definitions -------------------------------------------
    const drainGracePeriod = props.drainGracePeriodMs ?? 25_000;
    const extra = props.edgeConfig ?? {};
    const raw: Record<string, unknown> = {
      auth: { passwordFile: '/tmp/passwd', ...(extra.auth as Record<string, unknown> | undefined) },
      ...Object.fromEntries(Object.entries(extra).filter(([k]) => k !== 'auth')),
      // the NLB terminates TLS and forwards plain MQTT and WebSocket to these, with a PROXY v2 header
      listeners: [
        { type: 'tcp', name: 'mqtt', host: '0.0.0.0', port: MQTT_PORTS.tcp, proxyProtocol: true },
        { type: 'ws', name: 'mqtt-ws', host: '0.0.0.0', port: MQTT_PORTS.ws, path: '/mqtt', proxyProtocol: true },
      ],
      cluster: { nats: { servers: [`nats://${natsHost}:${NATS_PORTS.client}`] } },
      dynamodb: { tablePrefix: props.tablePrefix ?? 'fleetmq-' },
      drain: { gracePeriod: drainGracePeriod },
      ops: { enabled: true, host: '0.0.0.0', port: OPS_PORT },
    };
    const rendered = renderEdgeConfig(raw, { 'cluster.redis.url': redisUrl, 'dynamodb.region': Aws.REGION });
    this.edgeConfig = rendered.config;
    const drain = drainSeconds(rendered.config);
    const stopTimeout = drain + 10;
    if (stopTimeout > FARGATE_MAX_STOP_SECONDS) {
      throw new Error(`drain.gracePeriod ${drainGracePeriod} ms: Fargate stops a container at most ${FARGATE_MAX_STOP_SECONDS} s after SIGTERM; keep the drain under ${FARGATE_MAX_STOP_SECONDS - 10} s`);
    }

    this.tables = Object.entries(edgeTables(rendered.config)).map(([key, def]) => {
      const keyType = (t: 'S' | 'N' | undefined) => (t === 'N' ? dynamodb.AttributeType.NUMBER : dynamodb.AttributeType.STRING);
      return new dynamodb.Table(this, `Table-${key}`, {
        tableName: def.tableName,
        partitionKey: { name: def.partitionKey, type: dynamodb.AttributeType.STRING },
        ...(def.sortKey !== undefined ? { sortKey: { name: def.sortKey, type: keyType(def.sortKeyType) } } : {}),
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        timeToLiveAttribute: def.ttlAttribute,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        deletionProtection: true,
        removalPolicy: RemovalPolicy.RETAIN,
      });
    });

    // --- secrets: admin token (generated) and the password file (filled in by the operator) ---
    const adminToken = new secretsmanager.Secret(this, 'AdminToken', {
      description: 'FleetMQ ops admin API token (fleetmq CLI --token)',
      generateSecretString: { passwordLength: 40, excludePunctuation: true },
    }) as secretsmanager.ISecret;
    const passwordFile = new secretsmanager.Secret(this, 'PasswordFile', {
      description: 'FleetMQ Mosquitto password file: put the output of `fleetmq passwd` here',
      // no users until the operator writes the file: nobody logs in rather than everybody
      secretStringValue: SecretValue.unsafePlainText('# FleetMQ password file: replace with the file `fleetmq passwd` writes\n'),
    }) as secretsmanager.ISecret;

    // --- the edge service -----------------------------------------------------------------------
    const edgeSg = new ec2.SecurityGroup(this, 'EdgeSecurityGroup', { vpc, description: 'FleetMQ edge nodes' });
    // the NLB (no client IP preservation: PROXY v2 carries it) and its health checks come from inside the VPC
    for (const port of [MQTT_PORTS.tcp, MQTT_PORTS.ws, OPS_PORT]) edgeSg.addIngressRule(ec2.Peer.ipv4(vpc.vpcCidrBlock), ec2.Port.tcp(port), 'load balancer and health checks');
    natsSg.addIngressRule(edgeSg, ec2.Port.tcp(NATS_PORTS.client), 'edge nodes');
    redisSg.addIngressRule(edgeSg, ec2.Port.tcp(REDIS_PORT), 'edge nodes');
    edgeSg.connections.allowInternally(ec2.Port.tcp(OPS_PORT), 'Prometheus scraping from a sidecar or peer');

    const edgeTask = new ecs.FargateTaskDefinition(this, 'EdgeTask', { cpu: edgeProps.cpu ?? 1024, memoryLimitMiB: edgeProps.memoryMiB ?? 2048 });
    for (const table of this.tables) table.grantReadWriteData(edgeTask.taskRole);
    edgeTask.addContainer('edge', {
      image: ecs.ContainerImage.fromRegistry(props.image),
      // the config and the password file reach the container as environment values; written to
      // files, then `exec` so that SIGTERM goes to the node itself and starts the drain
      entryPoint: ['/bin/sh', '-c'],
      command: ['printf "%s" "$FLEETMQ_CONFIG_YAML" > /tmp/fleetmq.yaml && printf "%s" "$FLEETMQ_PASSWD" > /tmp/passwd && exec node services/edge/dist/cli.js start'],
      environment: {
        FLEETMQ_CONFIG: '/tmp/fleetmq.yaml',
        FLEETMQ_CONFIG_YAML: rendered.yaml,
        FLEETMQ_CLUSTER__REDIS__URL: redisUrl,
        FLEETMQ_DYNAMODB__REGION: Aws.REGION,
      },
      secrets: {
        FLEETMQ_OPS__ADMIN_TOKEN: ecs.Secret.fromSecretsManager(adminToken),
        // the admin CLI run with `aws ecs execute-command` finds the token too
        FLEETMQ_ADMIN_TOKEN: ecs.Secret.fromSecretsManager(adminToken),
        FLEETMQ_PASSWD: ecs.Secret.fromSecretsManager(passwordFile),
      },
      portMappings: [
        { name: 'mqtt', containerPort: MQTT_PORTS.tcp },
        { name: 'mqtt-ws', containerPort: MQTT_PORTS.ws },
        { name: 'ops', containerPort: OPS_PORT },
      ],
      stopTimeout: Duration.seconds(stopTimeout),
      healthCheck: {
        command: ['CMD', 'node', '-e', `fetch('http://127.0.0.1:${OPS_PORT}${LIVE_PATH}').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))`],
        interval: Duration.seconds(10),
        startPeriod: Duration.seconds(20),
      },
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'edge', logRetention: logs.RetentionDays.ONE_MONTH }),
      readonlyRootFilesystem: false,
    });
    this.edgeService = new ecs.FargateService(this, 'Edge', {
      cluster,
      taskDefinition: edgeTask,
      // no desiredCount: autoscaling owns it (a value here would reset it on every deploy)
      securityGroups: [edgeSg],
      // rolling upgrade: start new tasks first, drain old ones after
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { rollback: true },
      healthCheckGracePeriod: Duration.seconds(60),
      // `aws ecs execute-command` for the admin CLI (IAM decides who may)
      enableExecuteCommand: true,
      // edge.fleetmq.internal lists every task: Prometheus finds them with dns_sd_configs (port 8081)
      cloudMapOptions: { name: 'edge', cloudMapNamespace: namespace, dnsRecordType: servicediscovery.DnsRecordType.A, dnsTtl: Duration.seconds(10) },
    });

    // --- the Network Load Balancer --------------------------------------------------------------
    this.loadBalancer = new elbv2.NetworkLoadBalancer(this, 'Nlb', { vpc, internetFacing: true, crossZoneEnabled: true });
    const certificate =
      'arn' in props.certificate
        ? acm.Certificate.fromCertificateArn(this, 'Certificate', props.certificate.arn)
        : new acm.Certificate(this, 'Certificate', { domainName: props.certificate.domainName, validation: acm.CertificateValidation.fromDns() });
    const healthCheck: elbv2.HealthCheck = {
      protocol: elbv2.Protocol.HTTP,
      port: String(OPS_PORT),
      path: READY_PATH,
      interval: Duration.seconds(10),
      timeout: Duration.seconds(5),
      healthyThresholdCount: 2,
      unhealthyThresholdCount: 2,
    };
    // connections stay open through deregistration for as long as a drain may take
    const deregistrationDelay = Duration.seconds(drain + 5);
    const mqttTargets = new elbv2.NetworkTargetGroup(this, 'MqttTargets', {
      vpc,
      port: MQTT_PORTS.tcp,
      protocol: elbv2.Protocol.TCP,
      targetType: elbv2.TargetType.IP,
      proxyProtocolV2: true,
      preserveClientIp: false,
      connectionTermination: false,
      deregistrationDelay,
      healthCheck,
    });
    // WebSocket clients behind 443 keep their own address too (the ws listener reads the header)
    const wsTargets = new elbv2.NetworkTargetGroup(this, 'WsTargets', {
      vpc,
      port: MQTT_PORTS.ws,
      protocol: elbv2.Protocol.TCP,
      targetType: elbv2.TargetType.IP,
      proxyProtocolV2: true,
      preserveClientIp: false,
      connectionTermination: false,
      deregistrationDelay,
      healthCheck,
    });
    mqttTargets.addTarget(this.edgeService.loadBalancerTarget({ containerName: 'edge', containerPort: MQTT_PORTS.tcp }));
    wsTargets.addTarget(this.edgeService.loadBalancerTarget({ containerName: 'edge', containerPort: MQTT_PORTS.ws }));
    this.loadBalancer.addListener('Mqtt', { port: MQTT_PORTS.tcp, protocol: elbv2.Protocol.TCP, defaultTargetGroups: [mqttTargets] });
    this.loadBalancer.addListener('Mqtts', { port: 8883, protocol: elbv2.Protocol.TLS, certificates: [certificate], sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS, defaultTargetGroups: [mqttTargets] });
    this.loadBalancer.addListener('MqttWss', { port: 443, protocol: elbv2.Protocol.TLS, certificates: [certificate], sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS, defaultTargetGroups: [wsTargets] });

    // --- autoscaling: CPU, and connections per task ----------------------------------------------
    const scaling = this.edgeService.autoScaleTaskCount({ minCapacity: minTasks, maxCapacity: maxTasks });
    scaling.scaleOnCpuUtilization('Cpu', { targetUtilizationPercent: edgeProps.cpuTargetPercent ?? 60, scaleInCooldown: Duration.minutes(5), scaleOutCooldown: Duration.minutes(1) });
    const perTask = edgeProps.connectionsPerTask ?? 20_000;
    const connectionsPerTask = new cloudwatch.MathExpression({
      label: 'MQTT connections per edge task',
      expression: 'IF(hosts > 0, flows / hosts, flows)',
      usingMetrics: {
        flows: this.loadBalancer.metrics.activeFlowCount({ statistic: 'Average' }),
        hosts: mqttTargets.metrics.healthyHostCount({ statistic: 'Minimum' }),
      },
      period: Duration.minutes(1),
    });
    scaling.scaleOnMetric('Connections', {
      metric: connectionsPerTask,
      adjustmentType: appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
      scalingSteps: [
        { upper: perTask * 0.5, change: -1 },
        { lower: perTask, change: +1 },
        { lower: perTask * 1.5, change: +3 },
      ],
      evaluationPeriods: 3,
      cooldown: Duration.minutes(3),
    });

    new CfnOutput(this, 'LoadBalancerDns', { value: this.loadBalancer.loadBalancerDnsName, description: 'MQTT 1883, MQTT over TLS 8883, WSS 443 (path /mqtt)' });
    new CfnOutput(this, 'AdminTokenSecret', { value: adminToken.secretArn, description: 'fleetmq CLI --token (aws secretsmanager get-secret-value)' });
    new CfnOutput(this, 'PasswordFileSecret', { value: passwordFile.secretArn, description: 'put the `fleetmq passwd` file here (aws secretsmanager put-secret-value)' });
  }
}
