//! The dashboard instances' launch template: the AMI, instance type, instance profile (by ARN),
//! the app security group, IMDSv2 only, an encrypted gp3 root volume on the AMI's own root
//! device, and the rendered user data.
//!
//! Every version carries the COMPLETE launch template data (`template_data`): a version made
//! with only a new ImageId and a SourceVersion inherits the rest on AWS but not on every
//! implementation, and a self-contained version is easier to read back anyway. The blue/green
//! upgrade builds its versions with the same functions (`TemplateInputs`, `build_data`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    self as t, LaunchTemplateBlockDeviceMappingRequest, LaunchTemplateEbsBlockDeviceRequest,
    LaunchTemplateHttpTokensState, LaunchTemplateIamInstanceProfileSpecificationRequest,
    LaunchTemplateInstanceMetadataEndpointState, LaunchTemplateInstanceMetadataOptionsRequest,
    LaunchTemplateTagSpecificationRequest, RequestLaunchTemplateData, ResourceType, Tag, VolumeType,
};
use base64::Engine;

use super::auto_scaling_group::{iam_propagation_budget, retry_iam_propagation};
use super::{Aws, ResourceKind, dep_output, ec2, props};
use crate::aws::{err, tags};
use crate::core::diff::{AttrSpec, ChangeAction, KNOWN_AFTER_UP, Settings};
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{InstanceSettings, Kind, NodeSpec, Props};
use crate::core::userdata::{self, UserDataParams};

pub struct LaunchTemplate;

/// Everything one launch template version holds, resolved to ids and ARNs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateInputs {
    pub ami: String,
    pub instance_type: String,
    pub profile_arn: String,
    pub security_group_ids: Vec<String>,
    pub key_name: Option<String>,
    pub root_volume_gib: i32,
    pub user_data: UserDataParams,
    /// Tags for the instances and volumes launched from it.
    pub deployment: String,
    pub tag_key: String,
}

/// The ids and ARNs a launch template version refers to, as the other resources recorded them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateRefs {
    pub profile_arn: String,
    pub security_group_ids: Vec<String>,
    pub file_system_id: String,
    pub db_secret_arn: String,
    pub licence_secret_arn: Option<String>,
}

impl TemplateInputs {
    /// The inputs from the launch template's props (`instance`) and the recorded ids.
    pub fn new(instance: &InstanceSettings, tag_key: &str, refs: &TemplateRefs) -> Self {
        Self {
            ami: instance.ami.clone(),
            instance_type: instance.instance_type.clone(),
            profile_arn: refs.profile_arn.clone(),
            security_group_ids: refs.security_group_ids.clone(),
            key_name: instance.key_pair.clone(),
            root_volume_gib: instance.root_volume_gib,
            user_data: UserDataParams::for_instances(
                instance,
                &refs.file_system_id,
                &refs.db_secret_arn,
                refs.licence_secret_arn.as_deref(),
            ),
            deployment: instance.deployment.clone(),
            tag_key: tag_key.to_string(),
        }
    }
}

// ---- day 2: what the instances boot with, compared with the template's default version ----

/// Every attribute needs new instances: a new version and the blue/green roll.
const ATTRS: &[AttrSpec] = &[
    AttrSpec::with(
        "image",
        ChangeAction::Roll,
        "new instances boot the new image",
        &["ami"],
    ),
    AttrSpec::with(
        "instance_type",
        ChangeAction::Roll,
        "new instances of the new type",
        &["instance_type"],
    ),
    AttrSpec::with(
        "key_pair",
        ChangeAction::Roll,
        "an instance's key pair is set at launch",
        &["key_pair"],
    ),
    AttrSpec::with(
        "root_volume_gib",
        ChangeAction::Roll,
        "new instances get the new root volume",
        &["root_volume_gib"],
    ),
    AttrSpec::with(
        "user_data",
        ChangeAction::Roll,
        "the user data runs at first boot only",
        &[
            "licence",
            "storage.efs_uid",
            "storage.efs_gid",
            "storage.efs_require_tls",
            "scaling.lifecycle_heartbeat_seconds",
        ],
    ),
];

const NO_KEY_PAIR: &str = "(none)";

/// The user data as a setting: a short digest of the script (it names ids, never a secret,
/// but a whole script does not read well in `plan`).
pub fn user_data_digest(script: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(script);
    format!(
        "sha256:{}",
        d.iter().take(6).map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Pure: what the template's default version must hold for the props and the dependencies'
/// recorded ids.
fn desired_settings(instance: &InstanceSettings, refs: Option<(&str, &str, Option<&str>)>) -> Settings {
    let mut s = Settings::new();
    // No AMI in the config (`status`, `plan` without --ami): the image is not compared.
    if !instance.ami.is_empty() {
        s.insert("image".into(), instance.ami.clone());
    }
    s.insert("instance_type".into(), instance.instance_type.clone());
    s.insert(
        "key_pair".into(),
        instance.key_pair.clone().unwrap_or_else(|| NO_KEY_PAIR.into()),
    );
    s.insert("root_volume_gib".into(), instance.root_volume_gib.to_string());
    let user_data = match refs {
        Some((fs, secret, licence)) => {
            match userdata::render(&UserDataParams::for_instances(instance, fs, secret, licence)) {
                Ok(script) => user_data_digest(script.as_bytes()),
                Err(e) => format!("(cannot render: {e})"),
            }
        }
        None => KNOWN_AFTER_UP.to_string(),
    };
    s.insert("user_data".into(), user_data);
    s
}

/// The live settings of one version's data. `root_snapshot_gib`: the root snapshot of the
/// image it launches; a root volume the template raised to it reads as the configured size
/// (`configured`), which is what the config asked for.
fn live_settings(
    data: &t::ResponseLaunchTemplateData,
    configured_root: i32,
    root_snapshot_gib: Option<i32>,
) -> Settings {
    let mut s = Settings::new();
    if let Some(image) = data.image_id() {
        s.insert("image".into(), image.to_string());
    }
    if let Some(it) = data.instance_type() {
        s.insert("instance_type".into(), it.as_str().to_string());
    }
    s.insert("key_pair".into(), data.key_name().unwrap_or(NO_KEY_PAIR).to_string());
    if let Some(size) = data
        .block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs().and_then(|e| e.volume_size()))
        .next()
    {
        let as_configured = size == root_volume_gib(configured_root, root_snapshot_gib);
        s.insert(
            "root_volume_gib".into(),
            if as_configured { configured_root } else { size }.to_string(),
        );
    }
    if let Some(encoded) = data.user_data()
        && let Ok(script) = base64::engine::general_purpose::STANDARD.decode(encoded)
    {
        s.insert("user_data".into(), user_data_digest(&script));
    }
    s
}

fn tag_spec(resource_type: ResourceType, deployment: &str, key: &str) -> LaunchTemplateTagSpecificationRequest {
    let mut b = LaunchTemplateTagSpecificationRequest::builder().resource_type(resource_type);
    for (k, v) in tags::pairs(deployment, key) {
        b = b.tags(Tag::builder().key(k).value(v).build());
    }
    b.build()
}

/// The AMI's root device as DescribeImages reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootDevice {
    /// RootDeviceName (`/dev/xvda` on Amazon Linux, `/dev/sda1` on others).
    pub name: String,
    /// The size of the root device's snapshot (its block device mapping's VolumeSize), when
    /// the image says.
    pub snapshot_gib: Option<i32>,
}

/// The root volume's size: the configured one, raised to the image's root snapshot when that
/// is larger (AWS refuses a mapping smaller than the snapshot: every launch would fail).
pub fn root_volume_gib(configured: i32, snapshot_gib: Option<i32>) -> i32 {
    snapshot_gib.map_or(configured, |s| configured.max(s))
}

/// What to tell the operator when [`root_volume_gib`] raised the configured size.
pub fn root_volume_note(ami: &str, configured: i32, snapshot_gib: Option<i32>) -> Option<String> {
    let size = root_volume_gib(configured, snapshot_gib);
    (size > configured).then(|| {
        format!(
            "root_volume_gib = {configured} is smaller than the root snapshot of AMI {ami} ({size} GiB): \
             the instances get a {size} GiB root volume (set root_volume_gib = {size} or more to say so in the config)"
        )
    })
}

/// The complete launch template data. `root` is the AMI's root device: a mapping on any other
/// name adds a second volume instead of sizing the root one, and a size below its snapshot's
/// is refused, so the volume is at least the snapshot's size.
pub fn template_data(inputs: &TemplateInputs, root: &RootDevice, user_data_b64: &str) -> RequestLaunchTemplateData {
    RequestLaunchTemplateData::builder()
        .image_id(&inputs.ami)
        .instance_type(t::InstanceType::from(inputs.instance_type.as_str()))
        .iam_instance_profile(
            LaunchTemplateIamInstanceProfileSpecificationRequest::builder()
                .arn(&inputs.profile_arn)
                .build(),
        )
        .set_security_group_ids(Some(inputs.security_group_ids.clone()))
        .set_key_name(inputs.key_name.clone())
        .metadata_options(
            LaunchTemplateInstanceMetadataOptionsRequest::builder()
                .http_tokens(LaunchTemplateHttpTokensState::Required)
                .http_endpoint(LaunchTemplateInstanceMetadataEndpointState::Enabled)
                // 2 hops: containers on the instance (the dashboard runs in docker) reach IMDS too.
                .http_put_response_hop_limit(2)
                .build(),
        )
        .block_device_mappings(
            LaunchTemplateBlockDeviceMappingRequest::builder()
                .device_name(&root.name)
                .ebs(
                    LaunchTemplateEbsBlockDeviceRequest::builder()
                        .volume_type(VolumeType::Gp3)
                        .volume_size(root_volume_gib(inputs.root_volume_gib, root.snapshot_gib))
                        .encrypted(true)
                        .delete_on_termination(true)
                        .build(),
                )
                .build(),
        )
        .user_data(user_data_b64)
        .tag_specifications(tag_spec(ResourceType::Instance, &inputs.deployment, &inputs.tag_key))
        .tag_specifications(tag_spec(ResourceType::Volume, &inputs.deployment, &inputs.tag_key))
        .build()
}

/// The AMI's root device: its name and its snapshot's size.
pub async fn root_device(aws: &Aws, ami: &str) -> Result<RootDevice, ResourceError> {
    let bad_ami = |why: &str| {
        ResourceError::new(ErrorClass::Invalid, format!("AMI {ami} {why} in {}", aws.env.region))
            .with_hint("check --ami: AMI ids differ between regions; subscribe to the Panintelligence Marketplace image in this region")
    };
    let out = aws
        .clients
        .ec2
        .describe_images()
        .image_ids(ami)
        .send()
        .await
        .map_err(err("describing the AMI"));
    let out = match out {
        Err(e) if e.is(ErrorClass::NotFound) || e.code.as_deref() == Some("InvalidAMIID.Malformed") => {
            return Err(bad_ami("does not exist"));
        }
        other => other?,
    };
    let image = out.images().first().ok_or_else(|| bad_ami("does not exist"))?;
    let name = image
        .root_device_name()
        .map(String::from)
        .ok_or_else(|| bad_ami("has no root device name"))?;
    Ok(RootDevice {
        snapshot_gib: root_snapshot_gib(image),
        name,
    })
}

/// The size of the image's root snapshot: the VolumeSize of the block device mapping on its
/// RootDeviceName.
pub fn root_snapshot_gib(image: &t::Image) -> Option<i32> {
    let root = image.root_device_name()?;
    image
        .block_device_mappings()
        .iter()
        .find(|m| m.device_name() == Some(root))
        .and_then(|m| m.ebs())
        .and_then(|e| e.volume_size())
}

/// Render the user data and read the AMI's root device: the full data for one version.
pub async fn build_data(aws: &Aws, inputs: &TemplateInputs) -> Result<RequestLaunchTemplateData, ResourceError> {
    let script = userdata::render(&inputs.user_data).map_err(|e| ResourceError::new(ErrorClass::Invalid, e))?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(script);
    let root = root_device(aws, &inputs.ami).await?;
    Ok(template_data(inputs, &root, &encoded))
}

fn inputs_from(aws: &Aws, cx: &NodeCtx<'_>) -> Result<TemplateInputs, ResourceError> {
    let (profile, security_groups, file_system, db, licence, instance) = props!(
        cx,
        LaunchTemplate {
            profile,
            security_groups,
            file_system,
            db,
            licence,
            instance
        }
    );
    if instance.ami.is_empty() {
        return Err(ResourceError::new(ErrorClass::Invalid, "no AMI is configured")
            .with_hint("pass --ami with the Panintelligence image id"));
    }
    let refs = TemplateRefs {
        profile_arn: cx.dep(profile)?.require("arn")?.to_string(),
        security_group_ids: security_groups
            .iter()
            .map(|k| cx.dep_id(k).map(String::from))
            .collect::<Result<_, _>>()?,
        file_system_id: cx.dep_id(file_system)?.to_string(),
        db_secret_arn: cx.dep(db)?.require("secret_arn")?.to_string(),
        licence_secret_arn: match licence {
            Some(k) => Some(cx.dep_id(k)?.to_string()),
            None => None,
        },
    };
    let _ = aws;
    Ok(TemplateInputs::new(instance, &cx.spec.key, &refs))
}

fn outputs_of(lt: &t::LaunchTemplate) -> Option<Outputs> {
    Some(
        Outputs::new()
            .with("id", lt.launch_template_id()?)
            .with("name", lt.launch_template_name().unwrap_or_default())
            // The version the Auto Scaling group launches (explicit, never $Latest/$Default).
            .with("version", lt.default_version_number().unwrap_or(1).to_string()),
    )
}

async fn by_name(aws: &Aws, name: &str) -> Result<Option<t::LaunchTemplate>, ResourceError> {
    let out = aws
        .clients
        .ec2
        .describe_launch_templates()
        .launch_template_names(name)
        .send()
        .await
        .map_err(err("looking up the launch template by name"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| o.launch_templates().first().cloned()))
}

#[async_trait]
impl ResourceKind for LaunchTemplate {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let (name,) = props!(cx, LaunchTemplate { name });
        let Some(lt) = by_name(aws, name).await? else {
            return Ok(None);
        };
        if !tags::ec2_is_ours(lt.tags(), &aws.env.deployment, &cx.spec.key) {
            return Err(ResourceError::new(
                ErrorClass::AlreadyExists,
                format!("a launch template named {name} exists but does not belong to this deployment"),
            )
            .with_hint("choose another deployment name, or delete that launch template if it is a leftover"));
        }
        Ok(outputs_of(&lt))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (name,) = props!(cx, LaunchTemplate { name });
        let data = build_data(aws, &inputs_from(aws, cx)?).await?;
        // The template names the instance profile made just before: EC2 may refuse it as
        // invalid until IAM has propagated it. A refused create made nothing, so it is asked
        // again (same client token) within the propagation budget.
        let out = retry_iam_propagation("creating the launch template", iam_propagation_budget(), || async {
            aws.clients
                .ec2
                .create_launch_template()
                .launch_template_name(name)
                .client_token(cx.token)
                .launch_template_data(data.clone())
                .tag_specifications(tags::ec2_spec(
                    ResourceType::LaunchTemplate,
                    &aws.env.deployment,
                    &cx.spec.key,
                ))
                .send()
                .await
                .map_err(err("creating the launch template"))
        })
        .await;
        match out {
            Ok(o) => o
                .launch_template()
                .and_then(outputs_of)
                .ok_or_else(|| ResourceError::new(ErrorClass::Other, "CreateLaunchTemplate returned no template")),
            // A create whose answer was lost: the name is ours if the tags say so.
            Err(e) if e.is(ErrorClass::AlreadyExists) => self.find(aws, cx).await?.ok_or(e),
            Err(e) => Err(e),
        }
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Settings {
        let Props::LaunchTemplate {
            file_system,
            db,
            licence,
            instance,
            ..
        } = &spec.props
        else {
            return Settings::new();
        };
        let fs = dep_output(deps, file_system, "id");
        let secret = dep_output(deps, db, "secret_arn");
        let licence = licence.as_deref().map(|k| dep_output(deps, k, "id"));
        let known = [Some(&fs), Some(&secret), licence.as_ref()]
            .into_iter()
            .flatten()
            .all(|v| v != KNOWN_AFTER_UP);
        desired_settings(
            instance,
            known.then_some((fs.as_str(), secret.as_str(), licence.as_deref())),
        )
    }

    /// The template's default version: what an instance launched now boots with (the group
    /// launches that version; a roll makes the new one the default once it is done).
    async fn read(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        let (instance,) = props!(cx, LaunchTemplate { instance });
        let out = aws
            .clients
            .ec2
            .describe_launch_template_versions()
            .launch_template_id(outputs.id()?)
            .versions("$Default")
            .send()
            .await
            .map_err(err("reading the launch template's default version"));
        let Some(out) = ec2::not_found_is_none(out)? else {
            return Ok(Observed::Missing);
        };
        let Some(data) = out
            .launch_template_versions()
            .first()
            .and_then(|v| v.launch_template_data())
        else {
            return Ok(Observed::Missing);
        };
        let snapshot = match data.image_id() {
            Some(image) => match root_device(aws, image).await {
                Ok(root) => root.snapshot_gib,
                // An image deregistered since: its size cannot matter any more.
                Err(e) if e.is(ErrorClass::Invalid) => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        Ok(Observed::Present(live_settings(
            data,
            instance.root_volume_gib,
            snapshot,
        )))
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let id = cx.outputs.id()?;
        ec2::delete_retrying(
            Kind::LaunchTemplate,
            &format!("deleting launch template {id}"),
            || async {
                aws.clients
                    .ec2
                    .delete_launch_template()
                    .launch_template_id(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(err("deleting the launch template"))
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::Config;

    fn inputs(key_name: Option<&str>) -> TemplateInputs {
        let cfg = Config {
            deployment: "pi".into(),
            ..Config::default()
        };
        TemplateInputs {
            ami: "ami-0123456789abcdef0".into(),
            instance_type: "t3.medium".into(),
            profile_arn: "arn:aws:iam::123456789012:instance-profile/pi-dashboard-ec2".into(),
            security_group_ids: vec!["sg-1".into()],
            key_name: key_name.map(String::from),
            root_volume_gib: 15,
            user_data: UserDataParams::new(
                &cfg,
                "eu-west-1",
                "amazonaws.com",
                "fs-1",
                "arn:aws:secretsmanager:x",
                None,
            ),
            deployment: "pi".into(),
            tag_key: "launch-template".into(),
        }
    }

    #[test]
    fn the_data_is_complete_and_secure() {
        let d = template_data(&inputs(None), &root("/dev/sda1", Some(8)), "IyEvYmluL2Jhc2g=");
        assert_eq!(d.image_id(), Some("ami-0123456789abcdef0"));
        assert_eq!(d.instance_type().map(|t| t.as_str()), Some("t3.medium"));
        assert_eq!(
            d.iam_instance_profile().and_then(|p| p.arn()),
            Some("arn:aws:iam::123456789012:instance-profile/pi-dashboard-ec2")
        );
        assert_eq!(d.security_group_ids(), ["sg-1"]);
        assert_eq!(d.key_name(), None);
        let md = d.metadata_options().unwrap();
        assert_eq!(md.http_tokens(), Some(&LaunchTemplateHttpTokensState::Required));
        assert_eq!(
            md.http_endpoint(),
            Some(&LaunchTemplateInstanceMetadataEndpointState::Enabled)
        );
        assert_eq!(md.http_put_response_hop_limit(), Some(2));
        let [bdm] = d.block_device_mappings() else {
            panic!("one block device mapping")
        };
        assert_eq!(bdm.device_name(), Some("/dev/sda1"));
        let ebs = bdm.ebs().unwrap();
        assert_eq!(ebs.volume_type(), Some(&VolumeType::Gp3));
        assert_eq!(ebs.volume_size(), Some(15));
        assert_eq!(ebs.encrypted(), Some(true));
        assert_eq!(ebs.delete_on_termination(), Some(true));
        assert_eq!(d.user_data(), Some("IyEvYmluL2Jhc2g="));
        let kinds: Vec<&ResourceType> = d
            .tag_specifications()
            .iter()
            .filter_map(|s| s.resource_type())
            .collect();
        assert_eq!(kinds, [&ResourceType::Instance, &ResourceType::Volume]);
        for s in d.tag_specifications() {
            assert!(tags::ec2_is_ours(s.tags(), "pi", "launch-template"));
        }
    }

    #[test]
    fn the_key_pair_is_optional() {
        let d = template_data(&inputs(Some("ops")), &root("/dev/xvda", None), "x");
        assert_eq!(d.key_name(), Some("ops"));
    }

    fn root(name: &str, snapshot_gib: Option<i32>) -> RootDevice {
        RootDevice {
            name: name.into(),
            snapshot_gib,
        }
    }

    #[test]
    fn the_root_volume_is_never_smaller_than_the_image_s_root_snapshot() {
        assert_eq!(root_volume_gib(15, Some(30)), 30);
        assert_eq!(root_volume_gib(15, Some(8)), 15);
        assert_eq!(root_volume_gib(15, Some(15)), 15);
        assert_eq!(root_volume_gib(15, None), 15);
        let d = template_data(&inputs(None), &root("/dev/xvda", Some(30)), "x");
        let size = d.block_device_mappings()[0].ebs().and_then(|e| e.volume_size());
        assert_eq!(size, Some(30));
        let note = root_volume_note("ami-1", 15, Some(30)).unwrap();
        assert!(
            note.contains("root_volume_gib = 15") && note.contains("30 GiB"),
            "{note}"
        );
        assert_eq!(root_volume_note("ami-1", 40, Some(30)), None);
        assert_eq!(root_volume_note("ami-1", 15, None), None);
    }

    #[test]
    fn the_root_snapshot_is_the_mapping_on_the_root_device() {
        let bdm = |dev: &str, gib: i32| {
            t::BlockDeviceMapping::builder()
                .device_name(dev)
                .ebs(t::EbsBlockDevice::builder().volume_size(gib).build())
                .build()
        };
        let image = t::Image::builder()
            .root_device_name("/dev/xvda")
            .block_device_mappings(bdm("/dev/sdb", 100))
            .block_device_mappings(bdm("/dev/xvda", 30))
            .build();
        assert_eq!(root_snapshot_gib(&image), Some(30));
        let no_root = t::Image::builder().block_device_mappings(bdm("/dev/xvda", 30)).build();
        assert_eq!(root_snapshot_gib(&no_root), None);
    }

    fn instance() -> InstanceSettings {
        let cfg = Config {
            deployment: "pi".into(),
            ami: Some("ami-0123456789abcdef0".into()),
            ..Config::default()
        };
        InstanceSettings::from_config(&cfg, "eu-west-1")
    }

    const REFS: (&str, &str, Option<&str>) = ("fs-1", "arn:aws:secretsmanager:eu-west-1:1:secret:rds-db", None);

    /// The response data of the version `template_data` would make for `s` (what AWS reads
    /// back), with the root volume `root_gib`.
    fn live_data(s: &InstanceSettings, root_gib: i32) -> t::ResponseLaunchTemplateData {
        let script = userdata::render(&UserDataParams::for_instances(s, REFS.0, REFS.1, REFS.2)).unwrap();
        t::ResponseLaunchTemplateData::builder()
            .image_id(&s.ami)
            .instance_type(t::InstanceType::from(s.instance_type.as_str()))
            .set_key_name(s.key_pair.clone())
            .block_device_mappings(
                t::LaunchTemplateBlockDeviceMapping::builder()
                    .device_name("/dev/xvda")
                    .ebs(t::LaunchTemplateEbsBlockDevice::builder().volume_size(root_gib).build())
                    .build(),
            )
            .user_data(base64::engine::general_purpose::STANDARD.encode(script))
            .build()
    }

    fn changes(
        want: &InstanceSettings,
        live: &t::ResponseLaunchTemplateData,
        snapshot: Option<i32>,
    ) -> Vec<(String, ChangeAction)> {
        let desired = desired_settings(want, Some(REFS));
        let live = live_settings(live, want.root_volume_gib, snapshot);
        crate::core::diff::diff(ATTRS, &desired, &live, None)
            .into_iter()
            .map(|c| (c.attribute, c.action))
            .collect()
    }

    #[test]
    fn a_version_made_from_the_props_reads_back_as_no_change() {
        let s = instance();
        assert_eq!(changes(&s, &live_data(&s, 15), Some(8)), []);
        // Every attribute the diff compares is read back.
        let live = live_settings(&live_data(&s, 15), 15, Some(8));
        let names: Vec<&str> = ATTRS.iter().map(|a| a.name).collect();
        assert_eq!(
            live.keys().map(String::as_str).collect::<Vec<_>>().len(),
            names.len(),
            "{live:?}"
        );
    }

    #[test]
    fn what_an_instance_boots_with_changes_by_a_roll() {
        let before = instance();
        let live = live_data(&before, 15);
        let cases: Vec<(&str, InstanceSettings)> = vec![
            (
                "image",
                InstanceSettings {
                    ami: "ami-0fedcba9876543210".into(),
                    ..before.clone()
                },
            ),
            (
                "instance_type",
                InstanceSettings {
                    instance_type: "t3.large".into(),
                    ..before.clone()
                },
            ),
            (
                "key_pair",
                InstanceSettings {
                    key_pair: Some("ops".into()),
                    ..before.clone()
                },
            ),
            (
                "root_volume_gib",
                InstanceSettings {
                    root_volume_gib: 20,
                    ..before.clone()
                },
            ),
            (
                "user_data",
                InstanceSettings {
                    efs_uid: 2000,
                    ..before.clone()
                },
            ),
            (
                "user_data",
                InstanceSettings {
                    endpoint_wait_seconds: 1800,
                    ..before.clone()
                },
            ),
        ];
        for (attr, after) in cases {
            assert_eq!(
                changes(&after, &live, Some(8)),
                [(attr.to_string(), ChangeAction::Roll)],
                "{attr}"
            );
        }
        // A licence added changes the user data too (it names the licence secret).
        let desired = desired_settings(
            &before,
            Some((REFS.0, REFS.1, Some("arn:aws:secretsmanager:eu-west-1:1:secret:lic"))),
        );
        assert_ne!(desired["user_data"], live_settings(&live, 15, Some(8))["user_data"]);
    }

    /// The template raises the root volume to the image's root snapshot: a 30 GiB volume
    /// made for `root_volume_gib = 15` from a 30 GiB snapshot is what the config asked for.
    #[test]
    fn a_root_volume_raised_to_the_snapshot_is_no_change_but_a_real_difference_rolls() {
        let s = instance();
        assert_eq!(changes(&s, &live_data(&s, 30), Some(30)), []);
        assert_eq!(
            changes(&s, &live_data(&s, 20), Some(8)),
            [("root_volume_gib".to_string(), ChangeAction::Roll)]
        );
    }

    #[test]
    fn without_an_ami_in_the_config_the_image_is_not_compared() {
        let s = instance();
        let live = live_data(&s, 15);
        let no_ami = InstanceSettings {
            ami: String::new(),
            ..s
        };
        assert_eq!(changes(&no_ami, &live, Some(8)), []);
    }

    #[test]
    fn user_data_of_resources_not_built_yet_is_known_after_up() {
        let d = desired_settings(&instance(), None);
        assert_eq!(d["user_data"], KNOWN_AFTER_UP);
        assert!(d["user_data"] != user_data_digest(b""));
    }
}
